// storage-js conformance with the client's base at <url>/storage/v1, the path Supabase's
// gateway serves storage at (and supabase-js addresses): the same assertions as file.test.js,
// on the other URL shape. Public and signed URLs keep the prefix the client was given.
import { conformance } from './conformance.js'

conformance('file', { prefix: '/storage/v1' })
