package s3

// SetListPageSize makes List and Leftovers fetch at most n entries per request, so tests cross
// page boundaries with a handful of blobs.
func SetListPageSize(s *Store, n int32) { s.listPageSize = n }

// SetPartLimit lowers the number of parts a resumable upload may have (S3's 10,000), so that
// tests reach it with a few.
func SetPartLimit(s *Store, n int32) { s.partLimit = n }
