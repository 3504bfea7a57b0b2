package blobtest

import (
	"encoding/binary"
	"io"
)

// Gen yields n deterministic pseudo-random bytes for a seed without allocating, so tests can
// stream large blobs and compare them against a second Gen instead of holding them in memory.
type Gen struct {
	seed   uint64
	pos, n int64
}

// NewGen returns a reader of n bytes determined by seed. It implements only io.Reader, like
// a network body: stores cannot seek it or learn its length.
func NewGen(seed uint64, n int64) *Gen { return &Gen{seed: seed, n: n} }

func (g *Gen) Read(p []byte) (int, error) {
	if g.pos >= g.n {
		return 0, io.EOF
	}
	if rem := g.n - g.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	var w [8]byte
	for i := 0; i < len(p); {
		word := uint64(g.pos+int64(i)) / 8
		binary.LittleEndian.PutUint64(w[:], splitmix(g.seed*0x9e3779b97f4a7c15+word))
		i += copy(p[i:], w[(g.pos+int64(i))%8:])
	}
	g.pos += int64(len(p))
	return len(p), nil
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Bytes returns the n bytes NewGen(seed, n) yields.
func Bytes(n int64, seed uint64) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(NewGen(seed, n), b); err != nil {
		panic(err)
	}
	return b
}

// Reader hides everything of r but Read (bytes.Reader's Seek, Len, WriteTo…), so a store
// sees what it gets from an HTTP body.
func Reader(r io.Reader) io.Reader { return readerOnly{r} }

type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// Chunked returns at most max bytes per Read: short reads, as a network body gives.
func Chunked(r io.Reader, max int) io.Reader { return &chunked{r, max} }

type chunked struct {
	r   io.Reader
	max int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(p) > c.max {
		p = p[:c.max]
	}
	return c.r.Read(p)
}

// FailAfter yields r's bytes, then err instead of io.EOF: a body that breaks off.
func FailAfter(r io.Reader, err error) io.Reader { return &failAfter{r, err} }

type failAfter struct {
	r   io.Reader
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

// cancelReader calls cancel when first read and yields nothing: put between two readers in
// an io.MultiReader, it cancels a context midway through a body.
type cancelReader func()

func (c cancelReader) Read(p []byte) (int, error) {
	c()
	return 0, io.EOF
}

// gate closes reached when first read, then blocks until release is closed and yields
// nothing: put between two readers in an io.MultiReader, it holds a Put midway.
type gate struct{ reached, release chan struct{} }

func (g gate) Read([]byte) (int, error) {
	close(g.reached)
	<-g.release
	return 0, io.EOF
}
