package s3

// SetListPageSize makes List and Leftovers fetch at most n entries per request, so tests cross
// page boundaries with a handful of blobs.
func SetListPageSize(s *Store, n int32) { s.listPageSize = n }
