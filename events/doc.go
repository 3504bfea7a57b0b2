// Package events delivers the storage events the database records (storage.events, written by
// triggers in the transaction of each object change) to a webhook, the reference's way: POST
// WEBHOOK_URL with {"type":"Webhook","event":{…},"sentAt":…,"tenant":{…}}.
//
// Guarantees, and how:
//   - At least once. An event is marked delivered only after a 2xx; a crash between the two
//     sends it again (the X-Storage-Event-Id header lets a receiver drop the duplicate). Nothing
//     is dropped but by EVENTS_RETENTION.
//   - Only what is durable. Events commit with the rows they describe, and a row commits only
//     after its bytes are durable, so a receiver can read what an event names.
//   - In commit order per object. Per object, event ids follow commit order (sql/api/events.sql);
//     the Dispatcher delivers one object's events one at a time in id order, stops an object's
//     deliveries at its first failure (it and what follows wait out an exponential backoff) and
//     never keeps a "delivered up to" cursor, since across objects a lower id may commit later.
//     Objects are delivered concurrently, in lanes by a hash of bucket and name.
//   - One sender at a time. Every server runs a Dispatcher; they elect one leader through the
//     database lease 'events' (storage_internal.lease_take), with a short ttl renewed in the
//     background, so a killed leader's successor starts within seconds. A leader that cannot
//     renew stops, and no delivery outlives the lease it started under (each attempt's deadline
//     is the lease's local expiry), so two servers never send one event at the same time.
//
// The leader polls every EVENTS_POLL_INTERVAL (1s by default). It also LISTENs on channel
// storage_events, on a connection of its own that it reconnects when it drops, and wakes at
// once on a notification; the triggers notify only when storage.events_notify is on, because
// notifying transactions commit one at a time across the cluster (sql/api/events.sql has the
// numbers).
package events
