//! Finding where JSON strings and containers end, several bytes at a time.
//!
//! Most of a search response is `_source` text the consumer passes on untouched, so the reader
//! (`response.rs`) only needs to know where each `_source` ends. [`container_end`] finds that
//! 64 bytes at a time without branching on every byte: it builds bit masks of the quotes,
//! backslashes, brackets and control characters of a block (with SSE2 compares on x86-64,
//! with word-wide (SWAR) arithmetic elsewhere),
//! works out which bytes are inside strings from the unescaped quotes (a prefix XOR), and only
//! then looks at the few brackets outside strings one by one, matching each against the stack of
//! open ones.

/// Whether a `_source` spans several lines (the cluster returns it as it was indexed, so a
/// pretty-printed document comes back with its line breaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    OneLine,
    MultiLine,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// `{`, `}`, `[` and `]` all become [`FOLDED_BRACKET`] with [`FOLD_SET`] set and [`FOLD_CLEAR`]
/// cleared (and so do `y`, `Y`, `_` and DEL, which never occur outside a JSON string).
const FOLD_SET: u8 = 0x20;
const FOLD_CLEAR: u8 = 0x06;
const FOLDED_BRACKET: u8 = 0x79;

/// Where and why a walk failed (a byte offset into the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanError {
    pub at: usize,
    pub what: &'static str,
}

/// The high bit of every byte of `w` that equals `c`. Exact: no borrow crosses bytes.
fn bytes_equal(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * u64::from(c));
    !(((x & LOW7) + LOW7) | x) & HIGH
}

/// The high bit of every byte of `w` below 0x20 (a control character).
fn bytes_control(w: u64) -> u64 {
    !(((w & LOW7) + ONES * 0x60) | w) & HIGH
}

/// Gathers the high bits of the eight bytes of `flags` into the low eight bits, byte `k` to bit `k`.
fn gather(flags: u64) -> u64 {
    ((flags >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Bit `i` set in the result: an odd number of bits at or below `i` are set in `x`.
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// The bytes of a block that matter to the walk, one bit per byte.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{`, `}`, `[` and `]`, and a few bytes that never occur outside a string in JSON (`y`,
    /// `Y`, `_`, DEL): the walk looks at each such byte outside strings anyway.
    bracket: u64,
    control: u64,
}

impl Masks {
    /// Sixteen bytes per compare, one compare per class.
    #[cfg(target_arch = "x86_64")]
    fn of(block: &[u8; 64]) -> Masks {
        use safe_arch::{
            bitandnot_m128i, bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i,
            max_u8_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
        };
        let splat = |c: u8| set_splat_i8_m128i(c as i8);
        let (quote, backslash, fold_set, fold_clear, folded_bracket, last_control) = (
            splat(b'"'),
            splat(b'\\'),
            splat(FOLD_SET),
            splat(FOLD_CLEAR),
            splat(FOLDED_BRACKET),
            splat(0x1f),
        );
        let bits = |eq: m128i| u64::from(move_mask_i8_m128i(eq) as u16);
        let mut m = Masks::default();
        for (k, lane) in block.chunks_exact(16).enumerate() {
            let Ok(lane) = <&[u8; 16]>::try_from(lane) else {
                continue;
            };
            let v = load_unaligned_m128i(lane);
            let shift = 16 * k;
            m.quote |= bits(cmp_eq_mask_i8_m128i(v, quote)) << shift;
            m.backslash |= bits(cmp_eq_mask_i8_m128i(v, backslash)) << shift;
            let folded = bitandnot_m128i(fold_clear, bitor_m128i(v, fold_set));
            m.bracket |= bits(cmp_eq_mask_i8_m128i(folded, folded_bracket)) << shift;
            // Unsigned `c < 0x20` is `max(c, 0x1f) == 0x1f`.
            m.control |= bits(cmp_eq_mask_i8_m128i(
                max_u8_m128i(v, last_control),
                last_control,
            )) << shift;
        }
        m
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn of(block: &[u8; 64]) -> Masks {
        Masks::swar(block)
    }

    /// Eight bytes per word operation, on any CPU.
    #[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
    fn swar(block: &[u8; 64]) -> Masks {
        let words: [u64; 8] = std::array::from_fn(|k| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&block[8 * k..8 * k + 8]);
            u64::from_le_bytes(word)
        });
        let mut m = Masks::default();
        // Backslashes and control characters are rare: their masks are built only when the
        // block has some.
        let mut any_backslash = 0;
        let mut any_control = 0;
        for (k, &w) in words.iter().enumerate() {
            let folded = (w | (ONES * u64::from(FOLD_SET))) & !(ONES * u64::from(FOLD_CLEAR));
            m.quote |= gather(bytes_equal(w, b'"')) << (8 * k);
            m.bracket |= gather(bytes_equal(folded, FOLDED_BRACKET)) << (8 * k);
            any_backslash |= bytes_equal(w, b'\\');
            any_control |= bytes_control(w);
        }
        if any_backslash != 0 {
            for (k, &w) in words.iter().enumerate() {
                m.backslash |= gather(bytes_equal(w, b'\\')) << (8 * k);
            }
        }
        if any_control != 0 {
            for (k, &w) in words.iter().enumerate() {
                m.control |= gather(bytes_control(w)) << (8 * k);
            }
        }
        m
    }
}

/// The bytes escaped by a backslash, given the block's backslashes; `carry` says the previous
/// block ended in an escaping backslash, and is set when this one does.
fn escaped(backslash: u64, carry: &mut bool) -> u64 {
    let mut escaped = u64::from(*carry);
    *carry = false;
    let mut rest = backslash;
    while rest != 0 {
        let i = rest.trailing_zeros();
        rest &= rest - 1;
        if escaped >> i & 1 == 1 {
            continue;
        }
        if i == 63 {
            *carry = true;
        } else {
            escaped |= 1 << (i + 1);
        }
    }
    escaped
}

/// Whether a bracket left the walk inside the container it started in, or closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    Inside,
    Closed,
}

/// Applies one byte outside strings to the stack of open brackets: an opening bracket is pushed,
/// a closing one must match the innermost open one; any other byte changes nothing.
fn bracket(open: &mut Vec<u8>, c: u8) -> Result<Depth, &'static str> {
    match c {
        b'{' => open.push(b'}'),
        b'[' => open.push(b']'),
        b'}' | b']' => {
            if open.pop() != Some(c) {
                return Err("mismatched bracket");
            }
            if open.is_empty() {
                return Ok(Depth::Closed);
            }
        }
        _ => {}
    }
    Ok(Depth::Inside)
}

/// The end (one past the closing bracket) of the object or array opening at `b[start]`, and
/// whether it spans lines. `open` is scratch space for the stack of open brackets.
pub(crate) fn container_end(
    b: &[u8],
    start: usize,
    open: &mut Vec<u8>,
) -> Result<(usize, Layout), ScanError> {
    open.clear();
    let mut layout = Layout::OneLine;
    let mut in_string: u64 = 0;
    let mut escape_carry = false;
    let mut at = start;
    let mut padded = [b' '; 64];
    while at < b.len() {
        // A whole block is read in place; the last, short one is padded with spaces.
        let block: &[u8; 64] = match b.get(at..at + 64).and_then(|s| s.try_into().ok()) {
            Some(whole) => whole,
            None => {
                let rest = &b[at..];
                padded[..rest.len()].copy_from_slice(rest);
                padded[rest.len()..].fill(b' ');
                &padded
            }
        };
        let m = Masks::of(block);
        let escaped = escaped(m.backslash, &mut escape_carry);
        let quotes = m.quote & !escaped;
        // From an opening quote up to (not including) its closing quote.
        let inside = prefix_xor(quotes) ^ in_string;
        in_string = 0u64.wrapping_sub(inside >> 63);
        // Only what comes before the closing bracket counts, so these are checked in order.
        let control_inside = m.control & inside & !escaped;
        let first_bad = if control_inside == 0 {
            64
        } else {
            control_inside.trailing_zeros() as usize
        };
        let mut line_breaks = 0u64;
        let mut control_outside = m.control & !inside & !escaped;
        while control_outside != 0 {
            let i = control_outside.trailing_zeros() as usize;
            control_outside &= control_outside - 1;
            if matches!(block[i], b'\n' | b'\r') {
                line_breaks |= 1 << i;
            }
        }
        let bad = |i: usize| ScanError {
            at: at + i,
            what: "raw control character in a string",
        };
        let mut brackets = m.bracket & !inside & !escaped;
        while brackets != 0 {
            let i = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            if first_bad < i {
                return Err(bad(first_bad));
            }
            let closed = bracket(open, block[i]).map_err(|what| ScanError { at: at + i, what })?;
            if closed == Depth::Closed {
                if line_breaks & ((1 << i) - 1) != 0 {
                    layout = Layout::MultiLine;
                }
                return Ok((at + i + 1, layout));
            }
        }
        if first_bad < 64 {
            return Err(bad(first_bad));
        }
        if line_breaks != 0 {
            layout = Layout::MultiLine;
        }
        at += 64;
    }
    Err(ScanError {
        at: b.len(),
        what: "unterminated object or array",
    })
}

/// [`container_end`] one byte at a time: quicker for short values (a few bytes do not pay for
/// building a block's masks), and the reference the block walk is tested against.
pub(crate) fn container_end_bytewise(
    b: &[u8],
    start: usize,
    open: &mut Vec<u8>,
) -> Result<(usize, Layout), ScanError> {
    open.clear();
    let mut layout = Layout::OneLine;
    let mut at = start;
    let fail = |at, what| Err(ScanError { at, what });
    while at < b.len() {
        match b[at] {
            b'"' => {
                at += 1;
                loop {
                    match b.get(at) {
                        None => return fail(b.len(), "unterminated object or array"),
                        Some(b'"') => break,
                        Some(b'\\') => at += 2,
                        Some(0..=0x1f) => return fail(at, "raw control character in a string"),
                        Some(_) => at += 1,
                    }
                }
            }
            // Invalid outside a string; it escapes the next byte there too.
            b'\\' => at += 1,
            c @ (b'{' | b'[' | b'}' | b']') => match bracket(open, c) {
                Err(what) => return fail(at, what),
                Ok(Depth::Closed) => return Ok((at + 1, layout)),
                Ok(Depth::Inside) => {}
            },
            b'\n' | b'\r' => layout = Layout::MultiLine,
            _ => {}
        }
        at += 1;
    }
    fail(b.len(), "unterminated object or array")
}

/// The end of the run of plain string text starting at `at`: the first `"`, `\` or control
/// character, or the end of `b`. Eight bytes at a time.
pub(crate) fn plain_run_end(b: &[u8], mut at: usize) -> usize {
    while let Some(chunk) = b.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let stop = bytes_equal(w, b'"') | bytes_equal(w, b'\\') | bytes_control(w);
        if stop != 0 {
            return at + (stop.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(c) = b.get(at) {
        if matches!(c, b'"' | b'\\' | 0..=0x1f) {
            break;
        }
        at += 1;
    }
    at
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    #[test]
    fn masks_mark_exactly_the_bytes_of_each_class() {
        let mut block = [0u8; 64];
        for round in 0..8u32 {
            for (i, byte) in block.iter_mut().enumerate() {
                *byte = ((i as u32 * 131 + round * 71) % 256) as u8;
            }
            // Both ways of building them, whichever one this CPU uses.
            for m in [Masks::of(&block), Masks::swar(&block)] {
                for (i, &c) in block.iter().enumerate() {
                    let bit = |mask: u64| mask >> i & 1 == 1;
                    assert_eq!(bit(m.quote), c == b'"', "{i} {c}");
                    assert_eq!(bit(m.backslash), c == b'\\', "{i} {c}");
                    assert_eq!(bit(m.bracket), b"{}[]yY_\x7f".contains(&c), "{i} {c}");
                    assert_eq!(bit(m.control), c < 0x20, "{i} {c}");
                }
            }
        }
    }

    #[test]
    fn backslash_runs_escape_alternately_and_across_blocks() {
        let mut carry = false;
        // `\\\"` at bits 0-3: bits 1 and 3 are escaped.
        assert_eq!(escaped(0b0111, &mut carry), 0b1010);
        assert!(!carry);
        assert_eq!(escaped(1 << 63, &mut carry), 0);
        assert!(carry);
        // The next block's first byte is escaped, and a backslash there escapes nothing.
        assert_eq!(escaped(0b1, &mut carry), 0b1);
        assert!(!carry);
    }

    #[test]
    fn a_plain_run_ends_at_the_first_quote_backslash_or_control_character() {
        for len in 0..40 {
            for at in 0..len {
                for stop in [b'"', b'\\', b'\n', 0u8, 0x1f] {
                    let mut b = vec![b'a'; len];
                    b[at] = stop;
                    if at + 3 < len {
                        b[at + 3] = b'"';
                    }
                    if at > 0 {
                        b[at - 1] = 0x20;
                    }
                    for from in 0..=at {
                        assert_eq!(plain_run_end(&b, from), at, "{len} {at} {stop} {from}");
                    }
                }
            }
        }
        let utf8 = "é😀 \u{80}\u{ff}~".repeat(5);
        assert_eq!(plain_run_end(utf8.as_bytes(), 0), utf8.len());
    }

    /// JSON with the strings that are hard to delimit: quotes, backslash runs, brackets inside
    /// strings, escaped control characters, non-ASCII; long enough to cross block boundaries.
    /// The response reader's tests use it too.
    pub(crate) fn json_value() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            "[a-z ]{0,70}",
            "[\\\\\"]{1,9}",
            Just("\"}]{[,:\\\\".to_string()),
            "[\\x00-\\x1f\"\\\\é😀{}\\[\\]a]{0,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            text.prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map("[a-z\"\\\\{\\]]{0,5}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Valid JSON, compact or pretty, at any offset: the end a full parse finds.
        #[test]
        fn the_block_walk_finds_the_end_of_any_value(
            v in json_value(),
            pretty in any::<bool>(),
            lead in 0usize..70,
        ) {
            let (Value::Object(_) | Value::Array(_)) = v else { return Ok(()) };
            let json = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
            let text = format!("{}{json},\"after\"}}", " ".repeat(lead));
            let got = container_end(text.as_bytes(), lead, &mut Vec::new());
            let layout = if json.contains('\n') { Layout::MultiLine } else { Layout::OneLine };
            prop_assert_eq!(got, Ok((lead + json.len(), layout)));
        }

        /// Any bytes at all (broken JSON included): the same answer as the byte-by-byte walk.
        #[test]
        fn the_block_walk_agrees_with_the_bytewise_walk(
            body in prop::collection::vec(prop_oneof![
                Just(b'"'), Just(b'\\'), Just(b'{'), Just(b'}'), Just(b'['), Just(b']'),
                Just(b'\n'), Just(b'\t'), Just(b'a'), Just(b','), Just(0x01u8), Just(0xc3u8),
            ], 0..300),
            open in prop_oneof![Just(b'{'), Just(b'[')],
        ) {
            let mut b = vec![open];
            b.extend(body);
            prop_assert_eq!(container_end(&b, 0, &mut Vec::new()), container_end_bytewise(&b, 0, &mut Vec::new()));
        }
    }
}
