// storage-js conformance on the s3 blob backend, against a versitygw the harness starts.
import { conformance } from './conformance.js'

conformance('s3')
