package verify

import "fmt"

// MaxChunkSize bounds one chunk, uncompressed and compressed, so a device can
// hold a whole chunk in memory while it verifies it and a hostile manifest cannot
// ask for more. The chunker's largest chunk is 4 MiB.
const MaxChunkSize = 16 << 20

// validateChunkLimits holds the manifest rules added with the signed repository, kept
// out of manifest.go so that file stays the core schema. Validate calls it.
func (m *Manifest) validateChunkLimits() error {
	for _, f := range m.Files {
		for i, c := range f.Chunks {
			if c.Size > MaxChunkSize || c.CSize > MaxChunkSize {
				return rejectf("file %q chunk %d: %d bytes (%d compressed), more than the %d a chunk may hold",
					f.Path, i, c.Size, c.CSize, MaxChunkSize)
			}
		}
	}
	return m.validateRequires()
}

// DistinctChunks lists the distinct chunks of m in the order of their first
// use: the order a bundle carries them in, so a streaming reader fills files
// front to back, and the set a device with none of it would fetch.
func (m *Manifest) DistinctChunks() []Chunk {
	seen := map[string]bool{}
	var out []Chunk
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			if !seen[c.SHA256] {
				seen[c.SHA256] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// DownloadSize is the compressed size of every chunk of m, counting a chunk that
// appears more than once only once: what a device with none of it would fetch.
func (m *Manifest) DownloadSize() int64 {
	var n int64
	for _, c := range m.DistinctChunks() {
		n += c.CSize
	}
	return n
}

// validateIndex holds the schema rules on where chunks are listed: inline in
// schema 1, in the pinned index in schema 2, never both.
func (m *Manifest) validateIndex() error {
	switch {
	case m.Schema == SchemaInline && m.Index != nil:
		return rejectf("manifest schema 1 has an index: only schema 2 pins one")
	case m.Schema >= SchemaIndexed && m.Index == nil:
		return rejectf("manifest schema %d has no chunk index", m.Schema)
	case m.Index == nil:
		return nil
	}
	for _, f := range m.Files {
		if len(f.Chunks) > 0 {
			return rejectf("file %q lists chunks in a schema %d manifest: they belong in its index", f.Path, m.Schema)
		}
	}
	ix := m.Index
	if err := CheckDigest(ix.SHA256); err != nil {
		return fmt.Errorf("chunk index: %w", err)
	}
	if ix.Size <= 0 || ix.Size > MaxIndexSize || ix.Chunks < 0 || ix.Chunks > (ix.Size/36) {
		return rejectf("chunk index: %d bytes for %d chunks; an index is 1 to %d bytes, 36 a chunk", ix.Size, ix.Chunks, int64(MaxIndexSize))
	}
	return m.validateSections()
}

// validateSections holds the per-file sections (File.Index) to the index they
// divide: every file has one or none does, and they add up to the index's
// chunks and bytes (a 20-byte header, then 4 bytes and 36 a chunk per file).
func (m *Manifest) validateSections() error {
	var with, chunks int
	size := int64(20)
	for _, f := range m.Files {
		if f.Index == nil {
			continue
		}
		with++
		if err := CheckDigest(f.Index.SHA256); err != nil {
			return fmt.Errorf("file %q index section: %w", f.Path, err)
		}
		if f.Index.Chunks < 0 || f.Index.Chunks > m.Index.Chunks {
			return rejectf("file %q index section: %d chunks, the index has %d", f.Path, f.Index.Chunks, m.Index.Chunks)
		}
		if _, err := f.Index.SegmentList(); err != nil {
			return fmt.Errorf("file %q: %w", f.Path, err)
		}
		chunks += int(f.Index.Chunks)
		size += 4 + 36*f.Index.Chunks
	}
	switch {
	case with == 0:
		return nil
	case with != len(m.Files):
		return rejectf("chunk index: %d of %d files pin an index section; either every file does or none", with, len(m.Files))
	case int64(chunks) != m.Index.Chunks || size != m.Index.Size:
		return rejectf("chunk index: the files' sections add up to %d chunks in %d bytes, the index pins %d chunks in %d bytes",
			chunks, size, m.Index.Chunks, m.Index.Size)
	}
	return nil
}
