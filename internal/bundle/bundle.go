// Package bundle is the .mslot format and its reader, the device's side: the
// content of one published version as a single tar stream — the signed
// manifest envelope first, then each distinct chunk once, in the order the
// manifest first uses it (verify.Manifest.DistinctChunks) — so a device can
// install from a USB stick or from stdin without seeking. The publisher writes
// bundles (publish.WriteBundle) with the names declared here.
//
// A schema-2 manifest's bundle (format 2) carries its chunk index, locations
// and one pack instead of chunk entries (Reader.Index, Locations, Pack).
//
// Invariants: a Reader yields chunks only after the envelope verified against the
// trusted keys, only under names the manifest lists, in the manifest's order and
// with the manifest's compressed sizes; anything else, including a stream that
// ends early, is a rejection (verify.ErrRejected). Writing is deterministic: the
// same repository content gives the same bytes (publish.WriteBundle).
package bundle

// EnvelopeName is the first entry of a bundle: the signed manifest envelope.
const EnvelopeName = "manifest.json"

// ChunkName is the entry of the chunk with this sha256 (zstd-compressed).
func ChunkName(sha256 string) string { return "chunks/" + sha256 + ".zst" }

// Format-2 entries (a schema-2 manifest), in this order after the envelope:
// the index it pins, locations naming exactly one pack (the data.pack entry,
// offsets into it), and the pack: every distinct chunk once, in order of
// first use in the index.
const (
	IndexName     = "index.idx"
	LocationsName = "locations.loc"
	PackName      = "data.pack"
)

// Ext is the file extension of a bundle.
const Ext = ".mslot"
