//! Exact token counting for the built-in encodings.
//!
//! Implementation choice: GitHub's `bpe-openai` crate. It compiles `OpenAI`'s rank files into the binary
//! (nothing is fetched, ever), splits text with a `regex-automata` DFA instead of a backtracking regex,
//! and encodes each piece with a backtracking BPE encoder that produces tiktoken's exact tokens. Both
//! stages run in time linear in the input on every shape we have thrown at them, where tiktoken goes
//! quadratic on long single-piece inputs (a megabyte of one letter) and fails on long whitespace runs.
//! Our tests check its vocabulary byte-for-byte against tiktoken's published rank-file hashes and its
//! output against tiktoken itself.

mod piece_cache;
mod restart;
mod split;
mod split_index;
mod truncate;

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use piece_cache::PieceCache;
pub(crate) use split_index::SplitIndex;
pub use truncate::Keep;

use crate::error::{Result, SchedError};

/// A built-in encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, GPT-5, o-series models.
    O200kBase,
    /// GPT-4, GPT-3.5-turbo, text-embedding-3 models.
    Cl100kBase,
}

impl Encoding {
    /// Every built-in encoding, the default first.
    pub const ALL: [Encoding; 2] = [Encoding::O200kBase, Encoding::Cl100kBase];

    /// The encoding's name, as tiktoken spells it.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    /// Special tokens and their ids, as tiktoken defines them. Counting treats their text as ordinary
    /// text (tiktoken's `encode_ordinary`); they matter only for decoding ids that a model produced.
    fn special_tokens(self) -> &'static [(&'static str, u32)] {
        match self {
            Encoding::O200kBase => &[("<|endoftext|>", 199_999), ("<|endofprompt|>", 200_018)],
            Encoding::Cl100kBase => &[
                ("<|endoftext|>", 100_257),
                ("<|fim_prefix|>", 100_258),
                ("<|fim_middle|>", 100_259),
                ("<|fim_suffix|>", 100_260),
                ("<|endofprompt|>", 100_276),
            ],
        }
    }

    fn bpe(self) -> &'static bpe_openai::Tokenizer {
        match self {
            Encoding::O200kBase => bpe_openai::o200k_base(),
            Encoding::Cl100kBase => bpe_openai::cl100k_base(),
        }
    }

    fn whole_pieces(self) -> &'static WholePieces {
        static O200K: LazyLock<WholePieces> = LazyLock::new(|| WholePieces::new(Encoding::O200kBase.bpe()));
        static CL100K: LazyLock<WholePieces> = LazyLock::new(|| WholePieces::new(Encoding::Cl100kBase.bpe()));
        match self {
            Encoding::O200kBase => &O200K,
            Encoding::Cl100kBase => &CL100K,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Encoding {
    type Err = SchedError;

    fn from_str(name: &str) -> Result<Self> {
        Encoding::ALL.into_iter().find(|encoding| encoding.name() == name).ok_or_else(|| SchedError::UnknownEncoding {
            name: name.to_owned(),
            known: Encoding::ALL.map(Encoding::name).join(", "),
        })
    }
}

/// Every token's bytes, to find pre-tokenizer pieces that are a single token.
///
/// Most pieces of real text (a word with its leading space, a run of indentation, a number) are one token
/// of the vocabulary. tiktoken answers those with one hash lookup before running BPE, and BPE would give
/// the same single token anyway (a token is always its own encoding). The backtracking encoder instead
/// allocates and sets up its state for every piece; measured alone the lookup is no faster (both cost a
/// cache miss), but behind the piece cache it spares the encoder on the misses that are whole tokens.
/// The table costs ~10 MB and ~20 ms, once per encoding, on first use.
struct WholePieces {
    tokens: FxHashMap<&'static [u8], u32>,
    longest: usize,
}

impl WholePieces {
    fn new(bpe: &'static bpe_openai::Tokenizer) -> Self {
        let count = u32::try_from(bpe.bpe.num_tokens()).unwrap_or(u32::MAX);
        let tokens: FxHashMap<&'static [u8], u32> = (0..count).map(|id| (bpe.bpe.token_bytes(id), id)).collect();
        let longest = tokens.keys().map(|bytes| bytes.len()).max().unwrap_or(0);
        Self { tokens, longest }
    }

    fn get(&self, piece: &[u8]) -> Option<u32> {
        if piece.len() > self.longest {
            return None;
        }
        self.tokens.get(piece).copied()
    }
}

/// A text of at least twice this many bytes is counted in chunks of about this size, on every core.
const CHUNK_BYTES: usize = 32 * 1024;

/// `count_many` shares the work between cores above this many bytes.
const PARALLEL_BYTES: usize = 64 * 1024;

/// Pieces longer than this are counted with a limit (`count_up_to`), not in full.
const LONG_PIECE: usize = 4096;
/// Head room given to `bpe`'s limited count, whose running count may briefly exceed the final one while
/// it backtracks (its own margin is 10 tokens); beyond this it is certainly over.
const LIMIT_SLACK: usize = 64;

/// A tokenizer for one built-in encoding. Cheap to create and to copy: the vocabulary is shared and
/// built once per process, on first use.
#[derive(Clone, Copy)]
pub struct Tokenizer {
    encoding: Encoding,
    bpe: &'static bpe_openai::Tokenizer,
    whole_pieces: &'static WholePieces,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer").field("encoding", &self.encoding).finish_non_exhaustive()
    }
}

impl PartialEq for Tokenizer {
    fn eq(&self, other: &Self) -> bool {
        self.encoding == other.encoding
    }
}

impl Eq for Tokenizer {}

impl std::hash::Hash for Tokenizer {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.encoding.hash(state);
    }
}

impl Tokenizer {
    /// The tokenizer for `encoding`.
    pub fn new(encoding: Encoding) -> Self {
        Self { encoding, bpe: encoding.bpe(), whole_pieces: encoding.whole_pieces() }
    }

    /// The encoding this tokenizer implements.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// One past the largest token id, special tokens included (tiktoken's `n_vocab`).
    pub fn vocab_size(&self) -> u32 {
        let specials = self.encoding.special_tokens().iter().map(|&(_, id)| id + 1);
        specials.fold(self.ordinary_vocab_size(), u32::max)
    }

    /// How many ordinary (mergeable) tokens there are; their ids are `0..ordinary_vocab_size()`.
    pub fn ordinary_vocab_size(&self) -> u32 {
        // The vocabularies hold about 200k tokens, far below u32::MAX.
        u32::try_from(self.bpe.bpe.num_tokens()).unwrap_or(u32::MAX)
    }

    /// The bytes of an ordinary token, by rank; `None` for ids outside the ordinary vocabulary.
    pub fn token_bytes(&self, token: u32) -> Option<&'static [u8]> {
        (token < self.ordinary_vocab_size()).then(|| self.bpe.bpe.token_bytes(token))
    }

    /// Exact number of tokens in `text`, identical to tiktoken's `len(encode_ordinary(text))`.
    pub fn count(&self, text: &str) -> usize {
        if text.len() >= 2 * CHUNK_BYTES {
            return chunks(text).par_iter().map(|chunk| self.count_serial(chunk)).sum();
        }
        self.count_serial(text)
    }

    fn count_serial(&self, text: &str) -> usize {
        PieceCache::with(self.encoding, |cache| {
            self.pieces(text).map(|piece| cache.count(piece.as_bytes(), |bytes| self.count_piece(bytes))).sum()
        })
    }

    /// Exact counts of many texts, counted on every core when there is enough work to share.
    pub fn count_many(&self, texts: &[&str]) -> Vec<usize> {
        if texts.iter().map(|text| text.len()).sum::<usize>() < PARALLEL_BYTES {
            return texts.iter().map(|text| self.count(text)).collect();
        }
        texts.par_iter().with_min_len(16).map(|text| self.count(text)).collect()
    }

    /// The token count of `text` if it is at most `limit`, otherwise `None`. Stops at the first
    /// pre-tokenizer piece that crosses the limit, so it costs O(limit + one piece), not O(text).
    pub fn count_up_to(&self, text: &str, limit: usize) -> Option<usize> {
        PieceCache::with(self.encoding, |cache| {
            let mut total = 0usize;
            for piece in self.pieces(text) {
                total += if piece.len() > LONG_PIECE {
                    // A long piece (a megabyte of one letter) is encoded only until it crosses the limit.
                    self.bpe.bpe.count_till_limit(piece.as_bytes(), limit - total + LIMIT_SLACK)?
                } else {
                    cache.count(piece.as_bytes(), |bytes| self.count_piece(bytes))
                };
                if total > limit {
                    return None;
                }
            }
            Some(total)
        })
    }

    /// Whether `text` takes at most `max_tokens` tokens; see [`Tokenizer::count_up_to`].
    pub fn fits(&self, text: &str, max_tokens: usize) -> bool {
        self.count_up_to(text, max_tokens).is_some()
    }

    /// Token ids of `text`, identical to tiktoken's `encode_ordinary(text)`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.pieces(text).flat_map(|piece| self.bpe.bpe.encode_via_backtracking(piece.as_bytes())).collect()
    }

    /// The bytes that `tokens` stand for. Special-token ids decode to their text.
    pub fn decode_bytes(&self, tokens: &[u32]) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(tokens.len() * 4);
        for &token in tokens {
            if let Some(token_bytes) = self.token_bytes(token) {
                bytes.extend_from_slice(token_bytes);
            } else if let Some((text, _)) = self.encoding.special_tokens().iter().find(|&&(_, id)| id == token) {
                bytes.extend_from_slice(text.as_bytes());
            } else {
                return Err(SchedError::InvalidToken {
                    token,
                    encoding: self.encoding.name(),
                    vocab_size: self.vocab_size(),
                });
            }
        }
        Ok(bytes)
    }

    /// The text that `tokens` stand for; byte sequences that are not UTF-8 (a token sequence cut inside
    /// a character) become U+FFFD, as tiktoken's `decode` does by default.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        let bytes = self.decode_bytes(tokens)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        })
    }

    /// The pre-tokenizer's pieces of `text`; tokens never cross a piece boundary.
    fn pieces<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        split::Pieces::new(self.encoding, self.bpe, text)
    }

    /// Tokens in one pre-tokenizer piece.
    fn count_piece(&self, piece: &[u8]) -> usize {
        if self.whole_pieces.get(piece).is_some() {
            1
        } else {
            self.bpe.bpe.count(piece)
        }
    }

    /// Token ids of one pre-tokenizer piece.
    fn encode_piece(&self, piece: &str) -> Vec<u32> {
        match self.whole_pieces.get(piece.as_bytes()) {
            Some(token) => vec![token],
            None => self.bpe.bpe.encode_via_backtracking(piece.as_bytes()),
        }
    }

    /// The most bytes any single token stands for: text longer than `n` times this is over `n` tokens.
    pub(crate) fn longest_token_bytes(&self) -> usize {
        self.whole_pieces.longest.max(1)
    }

    /// Length in bytes of an ordinary token (every id the encoder produces is one).
    fn token_len(&self, token: u32) -> usize {
        self.bpe.bpe.token_len(token)
    }
}

/// `text` split at restart points about every `CHUNK_BYTES`: tokens never cross a piece boundary and
/// a restart point starts a piece of the whole text's split, so the chunks' counts add up exactly.
fn chunks(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut chunks = Vec::with_capacity(text.len() / CHUNK_BYTES + 1);
    let mut start = 0;
    for target in (CHUNK_BYTES..text.len()).step_by(CHUNK_BYTES) {
        // Looked for within half a chunk, so that a text with no restart points (a megabyte of one
        // letter) costs one pass, not one per chunk; without one, this chunk runs on into the next.
        let lowest = target.saturating_sub(CHUNK_BYTES / 2).max(start + 1);
        let split = (lowest..=target).rev().find(|&at| restart::starts_piece(bytes, at));
        if let Some((split, chunk)) = split.and_then(|split| Some((split, text.get(start..split)?))) {
            chunks.push(chunk);
            start = split;
        }
    }
    chunks.extend(text.get(start..));
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for encoding in Encoding::ALL {
            assert_eq!(encoding.name().parse::<Encoding>(), Ok(encoding));
        }
        let error = "gpt2".parse::<Encoding>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("gpt2") && message.contains("o200k_base") && message.contains("cl100k_base"));
    }

    #[test]
    fn known_counts() {
        let o200k = Tokenizer::new(Encoding::O200kBase);
        let cl100k = Tokenizer::new(Encoding::Cl100kBase);
        assert_eq!(o200k.count(""), 0);
        assert_eq!(o200k.count("hello world"), 2);
        assert_eq!(cl100k.count("hello world"), 2);
        // Special-token text is ordinary text: several tokens, never the special id.
        assert!(o200k.count("<|endoftext|>") > 1);
        assert!(!o200k.encode("<|endoftext|>").contains(&199_999));
    }

    #[test]
    fn vocab_sizes_match_tiktoken_n_vocab() {
        assert_eq!(Tokenizer::new(Encoding::O200kBase).vocab_size(), 200_019);
        assert_eq!(Tokenizer::new(Encoding::Cl100kBase).vocab_size(), 100_277);
    }

    #[test]
    fn encode_decode_round_trip_and_count_agrees() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let text = "fn main() {\n    println!(\"héllo, 世界 🌍\");\n}\n\n\n   trailing   ";
        let tokens = tokenizer.encode(text);
        assert_eq!(tokens.len(), tokenizer.count(text));
        assert_eq!(tokenizer.decode(&tokens).unwrap(), text);
    }

    #[test]
    fn decode_rejects_unknown_ids_and_decodes_special_ones() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        assert_eq!(tokenizer.decode(&[199_999]).unwrap(), "<|endoftext|>");
        let error = tokenizer.decode(&[199_998]).unwrap_err();
        assert!(matches!(error, SchedError::InvalidToken { token: 199_998, .. }));
        assert!(tokenizer.decode(&[u32::MAX]).is_err());
    }

    #[test]
    fn decode_of_a_split_character_is_lossy_not_an_error() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let tokens = tokenizer.encode("🌍");
        if tokens.len() > 1 {
            assert!(tokenizer.decode(&tokens[..1]).unwrap().contains('\u{FFFD}'));
        }
    }

    #[test]
    fn count_up_to_stops_at_the_limit() {
        let tokenizer = Tokenizer::new(Encoding::Cl100kBase);
        let text = "one two three four five";
        let exact = tokenizer.count(text);
        assert_eq!(tokenizer.count_up_to(text, exact), Some(exact));
        assert_eq!(tokenizer.count_up_to(text, exact - 1), None);
        assert!(tokenizer.fits(text, exact) && !tokenizer.fits(text, exact - 1));
        assert_eq!(tokenizer.count_up_to("", 0), Some(0));
    }

    #[test]
    fn long_texts_counted_in_chunks_count_as_one_piece_of_work() {
        let mixed = "fn main() {\n    let café = \"日本語 🌍\";  // ünïcödé\r\n}\n\n\t\t  x+=1;  ".repeat(3000);
        let texts = [mixed, "a".repeat(300_000), " \n".repeat(100_000), "é ".repeat(60_000) + &"b".repeat(70_000)];
        for encoding in Encoding::ALL {
            let tokenizer = Tokenizer::new(encoding);
            for text in &texts {
                let chunks = chunks(text);
                assert_eq!(chunks.concat(), *text);
                assert_eq!(tokenizer.count(text), tokenizer.count_serial(text), "{encoding}");
                let summed: usize = chunks.iter().map(|chunk| tokenizer.count_serial(chunk)).sum();
                assert_eq!(summed, tokenizer.count_serial(text));
            }
            // Text with restart points is really split.
            assert!(chunks(texts.first().map_or("", String::as_str)).len() > 4);
        }
    }

    #[test]
    fn adversarial_shapes_count_in_reasonable_time() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        for unit in ["a", " ", "\n", "\t", "é", "中", "🌍", "\r\n", "<|endoftext|>"] {
            let text = unit.repeat(200_000 / unit.len());
            let count = tokenizer.count(&text);
            assert!(count > 0 && count <= text.len());
        }
    }
}
