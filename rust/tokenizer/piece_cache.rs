//! Caches of piece counts: a small table per thread, and a shared one behind it.
//!
//! Counting real text is dominated by its most common pieces (" the", "\n", "    ", " =", "{"), and
//! both BPE and a lookup in the 200k-token vocabulary cost a cache miss or several per piece (~150 ns).
//! A direct-mapped table of 32,768 recent short pieces (768 KB, within a core's L2 on current servers)
//! answers most pieces of real text in a few nanoseconds. The 40 largest real transcripts hold 1.3M pieces
//! but 26k distinct ones, more than 4,096 slots (the earlier size) could hold; with 32,768 slots and the
//! shared map below, counting them went from 29–36 to 68–109 MB/s per core (back-to-back runs on a noisy
//! 2-core VM). The table is per thread
//! (no locks; counting runs with the GIL released) and per encoding. A slot holds the piece's bytes, so a
//! hit is exact, never a hash collision.
//!
//! Behind the tables, one process-wide map per encoding (sharded, each shard behind a mutex) holds every
//! piece up to 64 bytes that any thread has counted: a thread that has just started (a rayon worker in a
//! fit check) or whose slot was taken by another piece asks it before running BPE again (a lock and a
//! lookup, ~50 ns, against ~1 µs for BPE on a piece that is not a whole token).

use std::cell::RefCell;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::{LazyLock, Mutex, PoisonError};

use rustc_hash::{FxHashMap, FxHasher};

use super::Encoding;

/// Pieces longer than this are rare enough (and costly enough to encode) not to be worth caching.
const MAX_PIECE: usize = 22;
const SLOTS: usize = 32768;
/// Pieces up to this long go to the shared map.
const MAX_SHARED_PIECE: usize = 64;
const SHARDS: usize = 16;
/// A shard is emptied when it holds this many pieces (so the maps stay below ~30 MB in all).
const SHARD_LIMIT: usize = 1 << 14;

/// Counts by piece, behind a lock.
type Shard = Mutex<FxHashMap<Box<[u8]>, u32>>;

/// One encoding's shared map, by piece.
struct Shared {
    shards: [Shard; SHARDS],
}

impl Shared {
    fn new() -> Self {
        Self { shards: std::array::from_fn(|_| Mutex::new(FxHashMap::default())) }
    }

    fn shard(&self, hash: u64) -> Option<&Shard> {
        self.shards.get(usize::try_from(hash >> 60).unwrap_or(0) % SHARDS)
    }

    fn get(&self, hash: u64, piece: &[u8]) -> Option<usize> {
        let shard = self.shard(hash)?.lock().unwrap_or_else(PoisonError::into_inner);
        shard.get(piece).map(|&count| count as usize)
    }

    fn insert(&self, hash: u64, piece: &[u8], count: usize) {
        let (Some(shard), Ok(count)) = (self.shard(hash), u32::try_from(count)) else { return };
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= SHARD_LIMIT {
            shard.clear();
        }
        shard.insert(piece.into(), count);
    }
}

fn shared(encoding: Encoding) -> &'static Shared {
    static O200K: LazyLock<Shared> = LazyLock::new(Shared::new);
    static CL100K: LazyLock<Shared> = LazyLock::new(Shared::new);
    match encoding {
        Encoding::O200kBase => &O200K,
        Encoding::Cl100kBase => &CL100K,
    }
}

#[derive(Clone, Copy)]
struct Slot {
    len: u8,
    count: u8,
    bytes: [u8; MAX_PIECE],
}

const EMPTY: Slot = Slot { len: 0, count: 0, bytes: [0; MAX_PIECE] };

struct Table {
    slots: Box<[Slot]>,
}

thread_local! {
    static TABLES: RefCell<[Option<Table>; Encoding::ALL.len()]> = const { RefCell::new([None, None]) };
}

/// A borrowed cache for one encoding, for the length of one counting call.
pub(super) struct PieceCache<'a> {
    slots: &'a mut [Slot],
    shared: &'static Shared,
}

impl PieceCache<'_> {
    /// Run `work` with this thread's cache for `encoding`. Re-entrant calls (none today) get a fresh one.
    pub(super) fn with<T>(encoding: Encoding, work: impl FnOnce(&mut PieceCache<'_>) -> T) -> T {
        let index = Encoding::ALL.iter().position(|&known| known == encoding).unwrap_or(0);
        let shared = shared(encoding);
        TABLES.with(|tables| {
            let Ok(mut tables) = tables.try_borrow_mut() else {
                return work(&mut PieceCache { slots: &mut vec![EMPTY; SLOTS], shared });
            };
            let table = tables
                .get_mut(index)
                .map(|table| table.get_or_insert_with(|| Table { slots: vec![EMPTY; SLOTS].into_boxed_slice() }));
            match table {
                Some(table) => work(&mut PieceCache { slots: &mut table.slots, shared }),
                None => work(&mut PieceCache { slots: &mut vec![EMPTY; SLOTS], shared }),
            }
        })
    }

    /// The count of `piece`, from the caches or from `count` (and then remembered).
    pub(super) fn count(&mut self, piece: &[u8], count: impl FnOnce(&[u8]) -> usize) -> usize {
        // A sixth of real pieces are one byte ("\n", ".", "{"): always one token, since both vocabularies
        // hold every byte.
        if piece.len() == 1 {
            return 1;
        }
        if piece.len() > MAX_SHARED_PIECE || piece.is_empty() {
            return count(piece);
        }
        let hash = BuildHasherDefault::<FxHasher>::default().hash_one(piece);
        // A piece of at most 22 bytes, zero-padded: slots compare as fixed-size arrays, without a memcmp call.
        let padded = (piece.len() <= MAX_PIECE).then(|| {
            let mut bytes = [0; MAX_PIECE];
            if let Some(prefix) = bytes.get_mut(..piece.len()) {
                prefix.copy_from_slice(piece);
            }
            bytes
        });
        // The top bits of an Fx hash are the well-mixed ones.
        let slot = padded.and_then(|_| self.slots.get_mut(usize::try_from(hash >> 49).unwrap_or(0) % SLOTS));
        if let (Some(slot), Some(bytes)) = (&slot, padded) {
            if usize::from(slot.len) == piece.len() && slot.bytes == bytes {
                return usize::from(slot.count);
            }
        }
        let counted = self.shared.get(hash, piece).unwrap_or_else(|| {
            let counted = count(piece);
            self.shared.insert(hash, piece, counted);
            counted
        });
        // A piece of at most 22 bytes has at most 22 tokens, so the count fits a byte.
        if let (Some(slot), Some(bytes), Ok(len), Ok(small)) =
            (slot, padded, u8::try_from(piece.len()), u8::try_from(counted))
        {
            *slot = Slot { len, count: small, bytes };
        }
        counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_return_what_was_counted_and_collisions_are_not_confused() {
        PieceCache::with(Encoding::O200kBase, |cache| {
            assert_eq!(cache.count(b" the", |_| 1), 1);
            // Cached now: the closure must not run.
            assert_eq!(cache.count(b" the", |_| unreachable!()), 1);
            // Many distinct pieces evict each other but never answer for one another (a prefix that no other
            // test counts, since the shared map is process-wide).
            for n in 0..50_000u32 {
                let piece = format!("\x01{n}");
                let expected = piece.len();
                assert_eq!(cache.count(piece.as_bytes(), <[u8]>::len), expected);
            }
            // Pieces too long for either cache are counted every time.
            let long = [b'\x02'; 80];
            assert_eq!(cache.count(&long, |_| 7), 7);
            assert_eq!(cache.count(&long, |_| 8), 8);
        });
    }

    #[test]
    fn a_piece_counted_on_one_thread_is_known_to_the_others() {
        // Longer than a thread table's slots hold, short enough for the shared map.
        let piece: &'static [u8] = b"a piece that only this test counts";
        PieceCache::with(Encoding::Cl100kBase, |cache| assert_eq!(cache.count(piece, |_| 5), 5));
        let elsewhere = std::thread::spawn(move || {
            PieceCache::with(Encoding::Cl100kBase, |cache| cache.count(piece, |_| unreachable!()))
        });
        assert_eq!(elsewhere.join().ok(), Some(5));
    }
}
