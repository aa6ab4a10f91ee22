//! C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>): tile coordinates and
//! paths, which tiles a tree size publishes, tile contents, a [`HashReader`]
//! over fetched tiles, and entry bundles (SPEC §10, R-TILE-1…R-TILE-9).
//!
//! A tile at level `L`, index `N` holds the hashes of the tree nodes at tree
//! level `8·L` with indices `N·256 … N·256 + W − 1` (width `W`, 256 when
//! full). Paths are `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`,
//! with `N` written in zero-padded three-digit groups, all but the last
//! prefixed by `x` (`1234067` → `x001/x234/067`).

use crate::checkpoint::parse_digits;
use crate::hash::Hash;
use crate::merkle::{HashReader, NodeId, ProveError, node_hash};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Tree levels per tile: a full tile is a subtree of height 8. SPEC R-TILE-1.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile (entries in a full bundle). SPEC R-TILE-1.
pub const FULL_WIDTH: u16 = 256;
/// Bytes of one hash in tile data.
pub const HASH_LEN: usize = 32;
/// Highest tile level that can exist in a tree of at most `u64::MAX` leaves:
/// a level-8 tile would hold nodes at tree level 64.
pub const MAX_TILE_LEVEL: u8 = 7;
/// Longest path [`TileResource::parse`] looks at; every valid path is shorter.
pub const MAX_PATH_LEN: usize = 64;

/// Why a tile coordinate or path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// Width outside `1..=256`.
    #[error("tile width {0} is not in 1..=256")]
    InvalidWidth(u16),
    /// The tile cannot exist in any tree of at most `u64::MAX` leaves.
    #[error("tile lies beyond the largest tree a 64-bit size can describe")]
    BeyondMaxTree,
    /// The path does not follow the grammar of R-TILE-3.
    #[error("malformed tile path: {0}")]
    BadPath(&'static str),
    /// Tile data is not `width × 32` bytes.
    #[error("tile data is {got} bytes; a tile of width {width} is {expected} bytes")]
    DataLength {
        /// Width of the tile.
        width: u16,
        /// `width × 32`.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// Two versions of a tile disagree on a hash they both hold: the log
    /// served inconsistent tiles (or one was corrupted in transit).
    #[error("tile at level {level} index {index} conflicts with a tile already held")]
    Conflict {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
    },
    /// `new_tiles` was asked for a tree that shrinks.
    #[error("old tree size {old} is larger than new tree size {new}")]
    Shrink {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
}

/// Checks that the tile (level, index, width) exists in some tree of at most
/// `u64::MAX` leaves: `index·256 + width <= u64::MAX >> 8·level`. SPEC R-TILE-2.
fn check_exists(level: u8, index: u64, width: u16) -> Result<(), TileError> {
    if width == 0 || width > FULL_WIDTH {
        return Err(TileError::InvalidWidth(width));
    }
    if level > MAX_TILE_LEVEL {
        return Err(TileError::BeyondMaxTree);
    }
    let nodes_at_level = u64::MAX >> (u32::from(level) * u32::from(TILE_HEIGHT));
    let end = index
        .checked_mul(u64::from(FULL_WIDTH))
        .and_then(|s| s.checked_add(u64::from(width)))
        .ok_or(TileError::BeyondMaxTree)?;
    if end > nodes_at_level {
        return Err(TileError::BeyondMaxTree);
    }
    Ok(())
}

/// Writes `N` as three-digit groups, all but the last prefixed by `x`. SPEC R-TILE-3.
fn write_index(out: &mut String, index: u64) {
    let digits = index.to_string();
    let pad = (3 - digits.len() % 3) % 3;
    let padded = format!("{}{digits}", "0".repeat(pad));
    let groups = padded.len() / 3;
    for (i, chunk) in padded.as_bytes().chunks(3).enumerate() {
        if i + 1 < groups {
            out.push('x');
        }
        out.extend(chunk.iter().map(|&b| char::from(b)));
        if i + 1 < groups {
            out.push('/');
        }
    }
}

fn write_width(out: &mut String, width: u16) {
    if width != FULL_WIDTH {
        // Writing to a String cannot fail.
        let _ = write!(out, ".p/{width}");
    }
}

/// A Merkle tree tile: level `L`, index `N`, width `W` (256 = full). Every
/// value that exists can exist in a tree of at most `u64::MAX` leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    level: u8,
    index: u64,
    width: u16,
}

impl TileId {
    /// The tile at `level`, `index` with `width` hashes (256 = full).
    ///
    /// # Errors
    /// [`TileError::InvalidWidth`], [`TileError::BeyondMaxTree`].
    pub fn new(level: u8, index: u64, width: u16) -> Result<Self, TileError> {
        check_exists(level, index, width)?;
        Ok(Self {
            level,
            index,
            width,
        })
    }

    /// Tile level `L` (its hashes are at tree level `8·L`).
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Tile index `N` within its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Number of hashes, 1..=256.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile holds 256 hashes.
    pub fn is_full(&self) -> bool {
        self.width == FULL_WIDTH
    }

    /// The same tile at full width (what a partial tile becomes).
    ///
    /// # Errors
    /// [`TileError::BeyondMaxTree`] if the full tile cannot exist.
    pub fn to_full(&self) -> Result<Self, TileError> {
        Self::new(self.level, self.index, FULL_WIDTH)
    }

    /// `tile/<L>/<N>[.p/<W>]`. SPEC R-TILE-3.
    pub fn path(&self) -> String {
        let mut out = format!("tile/{}/", self.level);
        write_index(&mut out, self.index);
        write_width(&mut out, self.width);
        out
    }

    /// Parses a tile path strictly: only the exact output of
    /// [`TileId::path`] is accepted. SPEC R-TILE-3.
    ///
    /// # Errors
    /// [`TileError::BadPath`] (including entry-bundle paths) or the
    /// coordinate errors of [`TileId::new`].
    pub fn from_path(path: &str) -> Result<Self, TileError> {
        match TileResource::parse(path)? {
            TileResource::Hashes(t) => Ok(t),
            TileResource::Entries(_) => Err(TileError::BadPath("an entry bundle, not a hash tile")),
        }
    }

    /// The tree node held at position `i` of this tile, if `i < width`.
    pub fn node(&self, i: u16) -> Option<NodeId> {
        if i >= self.width {
            return None;
        }
        // In range: check_exists bounds index·256 + width.
        Some(NodeId::new(
            self.level * TILE_HEIGHT,
            self.index * u64::from(FULL_WIDTH) + u64::from(i),
        ))
    }

    /// The tree nodes this tile holds, left to right.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.width).filter_map(|i| self.node(i))
    }

    /// The leaves `[start, end)` covered by this tile's hashes.
    pub fn leaf_range(&self) -> (u64, u64) {
        let shift = u32::from(self.level) * u32::from(TILE_HEIGHT);
        // check_exists guarantees (index·256 + width) << shift <= u64::MAX.
        let start = (self.index * u64::from(FULL_WIDTH)) << shift;
        let end = (self.index * u64::from(FULL_WIDTH) + u64::from(self.width)) << shift;
        (start, end)
    }

    /// The tile that holds `node` (or, for a node between tile levels, the
    /// hashes it is computed from) in the tree of `size` leaves, at the width
    /// that tree publishes. `None` if `node` is not a complete subtree of that
    /// tree.
    pub fn for_node(node: NodeId, size: u64) -> Option<Self> {
        let (_, end) = node.leaf_range()?;
        if end > size {
            return None;
        }
        let level = node.level / TILE_HEIGHT;
        let within = u32::from(node.level % TILE_HEIGHT);
        let first = node.index.checked_shl(within)?;
        let index = first >> TILE_HEIGHT;
        let published = size >> (u32::from(level) * u32::from(TILE_HEIGHT));
        let width = published
            .saturating_sub(index * u64::from(FULL_WIDTH))
            .min(u64::from(FULL_WIDTH));
        Self::new(level, index, u16::try_from(width).ok()?).ok()
    }

    /// The entry bundle with the same index and width, for a level-0 tile.
    pub fn bundle(&self) -> Option<BundleId> {
        (self.level == 0).then_some(BundleId {
            index: self.index,
            width: self.width,
        })
    }
}

/// An entry bundle: the entries of leaves `N·256 … N·256 + W − 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId {
    index: u64,
    width: u16,
}

impl BundleId {
    /// The bundle `index` with `width` entries (256 = full).
    ///
    /// # Errors
    /// [`TileError::InvalidWidth`], [`TileError::BeyondMaxTree`].
    pub fn new(index: u64, width: u16) -> Result<Self, TileError> {
        check_exists(0, index, width)?;
        Ok(Self { index, width })
    }

    /// Bundle index `N`.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Number of entries, 1..=256.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the bundle holds 256 entries.
    pub fn is_full(&self) -> bool {
        self.width == FULL_WIDTH
    }

    /// `tile/entries/<N>[.p/<W>]`. SPEC R-TILE-3.
    pub fn path(&self) -> String {
        let mut out = String::from("tile/entries/");
        write_index(&mut out, self.index);
        write_width(&mut out, self.width);
        out
    }

    /// Parses an entry bundle path strictly. SPEC R-TILE-3.
    ///
    /// # Errors
    /// [`TileError::BadPath`] (including hash-tile paths) or the coordinate
    /// errors of [`BundleId::new`].
    pub fn from_path(path: &str) -> Result<Self, TileError> {
        match TileResource::parse(path)? {
            TileResource::Entries(b) => Ok(b),
            TileResource::Hashes(_) => Err(TileError::BadPath("a hash tile, not an entry bundle")),
        }
    }

    /// The leaves `[start, end)` whose entries this bundle holds.
    pub fn leaf_range(&self) -> (u64, u64) {
        self.tile().leaf_range()
    }

    /// The level-0 tile holding these entries' leaf hashes.
    pub fn tile(&self) -> TileId {
        TileId {
            level: 0,
            index: self.index,
            width: self.width,
        }
    }
}

/// Anything served under `tile/`: a hash tile or an entry bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileResource {
    /// `tile/<L>/<N>[.p/<W>]`.
    Hashes(TileId),
    /// `tile/entries/<N>[.p/<W>]`.
    Entries(BundleId),
}

/// Parses a decimal number with no sign, no leading zeros (except `0`
/// itself) and at most `max_digits` ASCII digits.
/// The canonical form is [`crate::checkpoint::parse_decimal`]'s; this adds
/// the width limit and says which rule failed.
fn parse_decimal(s: &str, max_digits: usize, what: &'static str) -> Result<u64, TileError> {
    if s.len() > max_digits {
        return Err(TileError::BadPath(what));
    }
    if s.len() > 1 && s.starts_with('0') && parse_digits(s).is_some() {
        return Err(TileError::BadPath("a number has a leading zero"));
    }
    crate::checkpoint::parse_decimal(s).ok_or(TileError::BadPath(what))
}

/// Parses the `N` groups: `x` + 3 digits for all but the last, 3 digits last.
fn parse_index(s: &str) -> Result<u64, TileError> {
    let groups: Vec<&str> = s.split('/').collect();
    let last = groups.len().saturating_sub(1);
    let mut n = 0u64;
    for (i, g) in groups.iter().enumerate() {
        let digits = if i < last {
            g.strip_prefix('x').ok_or(TileError::BadPath(
                "an index group other than the last lacks its x prefix",
            ))?
        } else {
            g
        };
        let v = parse_digits(digits)
            .filter(|_| digits.len() == 3)
            .ok_or(TileError::BadPath(
                "an index group is not exactly three digits",
            ))?;
        if i == 0 && i < last && v == 0 {
            return Err(TileError::BadPath("the index starts with a zero group"));
        }
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(v))
            .ok_or(TileError::BeyondMaxTree)?;
    }
    Ok(n)
}

impl TileResource {
    /// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, accepting
    /// only the canonical form the encoder produces: no leading zeros in
    /// `L` or `W`, `W` in 1..=255, `N` in three-digit groups with no leading
    /// zero group, nothing before or after. SPEC R-TILE-3.
    ///
    /// # Errors
    /// [`TileError::BadPath`], [`TileError::InvalidWidth`],
    /// [`TileError::BeyondMaxTree`].
    pub fn parse(path: &str) -> Result<Self, TileError> {
        if path.len() > MAX_PATH_LEN {
            return Err(TileError::BadPath("longer than any tile path"));
        }
        let rest = path
            .strip_prefix("tile/")
            .ok_or(TileError::BadPath("does not start with tile/"))?;
        let (kind, rest) = rest
            .split_once('/')
            .ok_or(TileError::BadPath("no tile index"))?;
        let (index_part, width) = match rest.split_once(".p/") {
            Some((n, w)) => {
                let w = parse_decimal(w, 3, "the partial width is not a decimal number")?;
                if !(1..u64::from(FULL_WIDTH)).contains(&w) {
                    return Err(TileError::BadPath("the partial width is not in 1..=255"));
                }
                (n, w as u16)
            }
            None => (rest, FULL_WIDTH),
        };
        let index = parse_index(index_part)?;
        let resource = if kind == "entries" {
            Self::Entries(BundleId::new(index, width)?)
        } else {
            let level = parse_decimal(kind, 2, "the level is not a decimal number")?;
            if level > 63 {
                return Err(TileError::BadPath("the level is not in 0..=63"));
            }
            Self::Hashes(TileId::new(level as u8, index, width)?)
        };
        // Belt and braces: the encoder must give back exactly the input.
        if resource.path() != path {
            return Err(TileError::BadPath("not in canonical form"));
        }
        Ok(resource)
    }

    /// The path of this resource.
    pub fn path(&self) -> String {
        match self {
            Self::Hashes(t) => t.path(),
            Self::Entries(b) => b.path(),
        }
    }
}

/// One level's worth of new tiles: full tiles `full_start..full_end`, then a
/// partial tile of `partial` hashes (0 = none).
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    level: u8,
    full_start: u64,
    full_end: u64,
    partial: u16,
}

/// The tiles a log publishes when it grows, from [`new_tiles`] or
/// [`tiles_for_size`]: level by level, full tiles left to right, then the
/// level's partial tile if any.
#[derive(Clone, Debug)]
pub struct TileIter {
    spans: [Span; 8],
    span_count: usize,
    span: usize,
    /// Next full index in the current span; `full_end` means "the partial".
    next: u64,
    partial_done: bool,
}

impl Iterator for TileIter {
    type Item = TileId;

    fn next(&mut self) -> Option<TileId> {
        while self.span < self.span_count {
            let s = *self.spans.get(self.span)?;
            if self.next < s.full_end {
                let index = self.next;
                self.next += 1;
                return Some(TileId {
                    level: s.level,
                    index,
                    width: FULL_WIDTH,
                });
            }
            if !self.partial_done && s.partial != 0 {
                self.partial_done = true;
                return Some(TileId {
                    level: s.level,
                    index: s.full_end,
                    width: s.partial,
                });
            }
            self.span += 1;
            self.partial_done = false;
            self.next = self.spans.get(self.span).map_or(0, |s| s.full_start);
        }
        None
    }
}

/// The tiles to publish when the tree grows from `old` to `new` leaves: every
/// tile of [`tiles_for_size`]`(new)` that [`tiles_for_size`]`(old)` does not
/// have (same level, index and width). SPEC R-TILE-5.
///
/// # Errors
/// [`TileError::Shrink`] if `old > new`.
pub fn new_tiles(old: u64, new: u64) -> Result<TileIter, TileError> {
    if old > new {
        return Err(TileError::Shrink { old, new });
    }
    let mut spans = [Span::default(); 8];
    let mut span_count = 0;
    for level in 0..=MAX_TILE_LEVEL {
        let shift = u32::from(level) * u32::from(TILE_HEIGHT);
        let (old_n, new_n) = (old >> shift, new >> shift);
        if new_n == 0 {
            break;
        }
        if old_n == new_n {
            continue;
        }
        let Some(slot) = spans.get_mut(span_count) else {
            break; // INVARIANT: at most 8 levels.
        };
        *slot = Span {
            level,
            full_start: old_n >> TILE_HEIGHT,
            full_end: new_n >> TILE_HEIGHT,
            partial: (new_n & 0xff) as u16,
        };
        span_count += 1;
    }
    Ok(TileIter {
        spans,
        span_count,
        span: 0,
        next: spans.first().map_or(0, |s| s.full_start),
        partial_done: false,
    })
}

/// Every tile of the tree of `size` leaves: at each level `L` with
/// `c = size >> 8L > 0`, `c / 256` full tiles and, if `c % 256 > 0`, one
/// partial tile of that width. SPEC R-TILE-4.
pub fn tiles_for_size(size: u64) -> TileIter {
    // 0 <= size, so new_tiles cannot fail; fall back to an empty iterator.
    new_tiles(0, size).unwrap_or(TileIter {
        spans: [Span::default(); 8],
        span_count: 0,
        span: 0,
        next: 0,
        partial_done: false,
    })
}

/// The partial tiles of the tree of `size` leaves, one per level at most:
/// those a log must serve for each checkpoint it publishes. SPEC R-TILE-6.
pub fn partial_tiles(size: u64) -> impl Iterator<Item = TileId> {
    (0..=MAX_TILE_LEVEL).filter_map(move |level| {
        let c = size >> (u32::from(level) * u32::from(TILE_HEIGHT));
        let w = (c & 0xff) as u16;
        (w != 0).then_some(TileId {
            level,
            index: c >> TILE_HEIGHT,
            width: w,
        })
    })
}

/// The tiles, at the widths the tree of `size` leaves publishes, that hold
/// (or let one compute) each of `nodes`; sorted, without duplicates. Nodes
/// that are not complete subtrees of that tree are skipped.
pub fn tiles_for_nodes(nodes: &[NodeId], size: u64) -> Vec<TileId> {
    let mut tiles: Vec<TileId> = nodes
        .iter()
        .filter_map(|n| TileId::for_node(*n, size))
        .collect();
    tiles.sort_unstable();
    tiles.dedup();
    tiles
}

/// The content of `tile`: its `width` hashes, 32 bytes each, concatenated.
/// SPEC R-TILE-1.
///
/// # Errors
/// The reader's failure.
pub fn tile_data<R: HashReader + ?Sized>(
    tile: &TileId,
    reader: &R,
) -> Result<Vec<u8>, ProveError<R::Error>> {
    let nodes: Vec<NodeId> = tile.nodes().collect();
    let hashes = reader.read_hashes(&nodes).map_err(ProveError::Read)?;
    if hashes.len() != nodes.len() {
        return Err(ProveError::ReaderContract {
            requested: nodes.len(),
            returned: hashes.len(),
        });
    }
    let mut out = Vec::with_capacity(hashes.len() * HASH_LEN);
    for h in &hashes {
        out.extend_from_slice(h.as_bytes());
    }
    Ok(out)
}

/// Splits tile data into its hashes, checking the length is `width × 32`.
///
/// # Errors
/// [`TileError::DataLength`].
pub fn parse_tile_data(tile: &TileId, data: &[u8]) -> Result<Vec<Hash>, TileError> {
    let expected = usize::from(tile.width) * HASH_LEN;
    if data.len() != expected {
        return Err(TileError::DataLength {
            width: tile.width,
            expected,
            got: data.len(),
        });
    }
    Ok(data
        .chunks_exact(HASH_LEN)
        .map(|c| {
            let mut b = [0u8; HASH_LEN];
            b.copy_from_slice(c);
            Hash(b)
        })
        .collect())
}

/// Hashes of fetched tiles, readable as any complete subtree hash (levels
/// between tile levels are computed by hashing up inside the tile, R-TILE-8).
///
/// # Security
/// Holding a tile does not authenticate it. Check what is computed from it
/// against a verified checkpoint: a root with [`crate::merkle::tree_root`],
/// or a proof with [`crate::merkle::verify_inclusion`] /
/// [`crate::merkle::verify_consistency`]. A tampered tile then fails that
/// check. [`TileHashes::insert`] also rejects a tile that contradicts one
/// already held (a partial tile must be a prefix of its full tile).
#[derive(Clone, Debug, Default)]
pub struct TileHashes {
    tiles: BTreeMap<(u8, u64), Vec<Hash>>,
}

/// [`TileHashes`] lacks the tile needed to read a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "tile at level {level} index {index} with at least {min_width} hashes is needed but not held"
)]
pub struct MissingTile {
    /// Tile level.
    pub level: u8,
    /// Tile index.
    pub index: u64,
    /// Smallest width that would do.
    pub min_width: u16,
}

impl TileHashes {
    /// No tiles.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fetched tile. A wider version of a tile replaces a narrower one;
    /// both must agree on the hashes they share.
    ///
    /// # Errors
    /// [`TileError::DataLength`], [`TileError::Conflict`].
    pub fn insert(&mut self, tile: TileId, data: &[u8]) -> Result<(), TileError> {
        let hashes = parse_tile_data(&tile, data)?;
        let key = (tile.level, tile.index);
        if let Some(held) = self.tiles.get(&key) {
            // SPEC R-TILE-5: a partial tile is a prefix of the wider one.
            let shared = held.len().min(hashes.len());
            if held.get(..shared) != hashes.get(..shared) {
                return Err(TileError::Conflict {
                    level: tile.level,
                    index: tile.index,
                });
            }
            if held.len() >= hashes.len() {
                return Ok(());
            }
        }
        self.tiles.insert(key, hashes);
        Ok(())
    }

    /// The hashes held for tile (level, index), if any.
    pub fn get(&self, level: u8, index: u64) -> Option<&[Hash]> {
        self.tiles.get(&(level, index)).map(Vec::as_slice)
    }
}

/// The root of a perfect subtree over `hashes` (a power-of-two count).
fn perfect_root(hashes: &[Hash]) -> Option<Hash> {
    let mut row: Vec<Hash> = hashes.to_vec();
    while row.len() > 1 {
        row = row
            .chunks_exact(2)
            .filter_map(|pair| match pair {
                [l, r] => Some(node_hash(l, r)),
                _ => None,
            })
            .collect();
    }
    row.first().copied()
}

impl HashReader for TileHashes {
    type Error = MissingTile;

    fn read_hash(&self, node: NodeId) -> Result<Hash, MissingTile> {
        let level = node.level / TILE_HEIGHT;
        let within = u32::from(node.level % TILE_HEIGHT);
        let count = 1usize << within;
        let missing = |index: u64, end: usize| MissingTile {
            level,
            index,
            min_width: u16::try_from(end).unwrap_or(FULL_WIDTH),
        };
        let Some(first) = node
            .index
            .checked_shl(within)
            .filter(|f| f >> within == node.index)
        else {
            return Err(missing(u64::MAX, FULL_WIDTH.into()));
        };
        let index = first >> TILE_HEIGHT;
        let start = (first & 0xff) as usize;
        let end = start + count;
        let hashes = self.tiles.get(&(level, index)).ok_or(missing(index, end))?;
        hashes
            .get(start..end)
            .and_then(perfect_root)
            .ok_or(missing(index, end))
    }
}

/// Why an entry bundle could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// An entry is longer than a `u16` length prefix can describe.
    #[error("entry {index} is {len} bytes; bundle entries are at most 65535 bytes")]
    EntryTooLong {
        /// Position in the bundle.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// A bundle to encode must hold 1 to 256 entries.
    #[error("a bundle holds 1 to 256 entries, not {0}")]
    BadCount(usize),
    /// The data ends inside entry `index` (in its length or its bytes).
    #[error("bundle truncated inside entry {index}")]
    Truncated {
        /// Position of the incomplete entry.
        index: usize,
    },
    /// Bytes remain after the `width` entries the path declares.
    #[error("bundle has bytes after its {width} declared entries")]
    TrailingBytes {
        /// Declared width.
        width: u16,
    },
    /// The data holds fewer entries than the path declares.
    #[error("bundle holds {got} entries but its path declares {width}")]
    WrongCount {
        /// Entries found.
        got: usize,
        /// Declared width.
        width: u16,
    },
}

/// Encodes entries as a bundle: each as `u16` big-endian length ‖ bytes.
/// SPEC R-TILE-7.
///
/// # Errors
/// [`BundleError::BadCount`], [`BundleError::EntryTooLong`].
pub fn encode_bundle<T: AsRef<[u8]>>(entries: &[T]) -> Result<Vec<u8>, BundleError> {
    if entries.is_empty() || entries.len() > usize::from(FULL_WIDTH) {
        return Err(BundleError::BadCount(entries.len()));
    }
    let total: usize = entries.iter().map(|e| e.as_ref().len() + 2).sum();
    let mut out = Vec::with_capacity(total);
    for (index, e) in entries.iter().enumerate() {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| BundleError::EntryTooLong {
            index,
            len: e.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decodes the bundle `id` into its entries: exactly `id.width()` entries,
/// no truncation, no trailing bytes. SPEC R-TILE-7.
///
/// # Errors
/// [`BundleError::Truncated`], [`BundleError::TrailingBytes`],
/// [`BundleError::WrongCount`].
pub fn decode_bundle<'a>(data: &'a [u8], id: &BundleId) -> Result<Vec<&'a [u8]>, BundleError> {
    let width = id.width;
    let mut rest = data;
    let mut entries = Vec::with_capacity(usize::from(width));
    while !rest.is_empty() {
        let index = entries.len();
        if index == usize::from(width) {
            return Err(BundleError::TrailingBytes { width });
        }
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or(BundleError::Truncated { index })?;
        let (entry, tail) = tail
            .split_at_checked(usize::from(u16::from_be_bytes(*len)))
            .ok_or(BundleError::Truncated { index })?;
        entries.push(entry);
        rest = tail;
    }
    if entries.len() != usize::from(width) {
        return Err(BundleError::WrongCount {
            got: entries.len(),
            width,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemoryHashes, leaf_hash, tree_root};

    fn count(old: u64, new: u64) -> usize {
        new_tiles(old, new).unwrap().count()
    }

    #[test]
    fn new_tiles_counts() {
        // Cases of Go's TestNewTilesForSize rescaled to height 8 (256-wide tiles).
        assert_eq!(count(1, 1), 0);
        assert_eq!(count(100, 101), 1); // level-0 partial 101
        assert_eq!(count(255, 257), 3); // full 0/0, partial 0/1 w1, partial 1/0 w1
        assert_eq!(count(256, 262), 1); // partial 0/1 w6
        assert_eq!(count(262, 500), 1);
        // 262 -> 2600: level 0 tiles 1..=9 full (9), partial 10 w40; level 1 partial w10.
        assert_eq!(count(262, 2600), 11);
        assert_eq!(count(0, 0), 0);
        assert!(matches!(
            new_tiles(2, 1),
            Err(TileError::Shrink { old: 2, new: 1 })
        ));
    }

    #[test]
    fn new_tiles_is_set_difference() {
        for old in [0u64, 1, 255, 256, 257, 511, 65535, 65536, 70000] {
            for new in [old, old + 1, old + 255, old + 256, old + 70000] {
                let before: std::collections::HashSet<_> = tiles_for_size(old).collect();
                let after: Vec<_> = tiles_for_size(new).collect();
                let want: Vec<_> = after
                    .iter()
                    .copied()
                    .filter(|t| !before.contains(t))
                    .collect();
                let got: Vec<_> = new_tiles(old, new).unwrap().collect();
                assert_eq!(got, want, "{old} -> {new}");
            }
        }
    }

    #[test]
    fn partial_tiles_are_the_partial_ones_of_tiles_for_size() {
        for size in [0u64, 1, 255, 256, 70000, u64::MAX] {
            let all: Vec<_> = if size < 1 << 20 {
                tiles_for_size(size).filter(|t| !t.is_full()).collect()
            } else {
                partial_tiles(size).collect()
            };
            assert_eq!(partial_tiles(size).collect::<Vec<_>>(), all);
        }
        assert_eq!(partial_tiles(u64::MAX).count(), 8);
    }

    #[test]
    fn tile_data_and_tile_reader_round_trip() {
        let mut mem = MemoryHashes::new();
        for i in 0..70_000u32 {
            mem.push(leaf_hash(&i.to_be_bytes())).unwrap();
        }
        let size = mem.size();
        let mut tiles = TileHashes::new();
        for t in tiles_for_size(size) {
            let data = tile_data(&t, &mem).unwrap();
            assert_eq!(data.len(), usize::from(t.width()) * 32);
            tiles.insert(t, &data).unwrap();
        }
        for s in [1u64, 255, 256, 257, 65536, 69_999, 70_000] {
            assert_eq!(tree_root(s, &tiles).unwrap(), tree_root(s, &mem).unwrap());
        }
        for level in 0..17u8 {
            for index in [0u64, 1, 3] {
                let n = NodeId::new(level, index);
                if n.leaf_range().unwrap().1 <= size {
                    assert_eq!(tiles.read_hash(n).ok(), mem.read_hash(n).ok(), "{n:?}");
                    let t = TileId::for_node(n, size).unwrap();
                    assert!(tiles.get(t.level(), t.index()).is_some());
                }
            }
        }
        // A conflicting partial version of a held tile is refused.
        let t = TileId::new(0, 3, 10).unwrap();
        let mut bad = tile_data(&t, &mem).unwrap();
        bad[5] ^= 1;
        assert!(matches!(
            tiles.insert(t, &bad),
            Err(TileError::Conflict { .. })
        ));
        assert!(matches!(
            tiles.insert(t, &bad[1..]),
            Err(TileError::DataLength { .. })
        ));
    }
}
