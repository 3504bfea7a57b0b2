// storage-js conformance on the file blob backend (see conformance.js).
import { conformance } from './conformance.js'

conformance('file')
