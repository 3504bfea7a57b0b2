// Package tests holds the integration tests: the SQL API as SQL callers use it, the HTTP
// routes against a real server, migrations, and the storage binary end to end. Every test
// gets its own database (testdb.New) on real PostgreSQL.
package tests

import (
	"testing"

	"github.com/pgstorage/storage/tests/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
