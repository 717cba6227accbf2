//! The serialized state of an exact sum: a few `i64` words, canonical, as short as the sum.
//!
//! An integer sum is its `i128` in the fewest two's-complement words: none for zero, one if it
//! fits an `i64`, two otherwise.
//!
//! A float sum `V` (an integer in units of the smallest subnormal) is written as
//!
//! * a header word: the index `lo` of its lowest nonzero 32-bit digit in bits 0 to 15, and in
//!   bit 16 whether the counters of non-finite values follow;
//! * `V / 2^(32 lo)` in the fewest 64-bit two's-complement words, lowest first (none for zero);
//! * the counts of NaNs, `+inf` and `-inf`, if bit 16 is set (they are not all zero then).
//!
//! A zero sum without non-finite values is no words at all. Values within `2^40` of each other
//! sum to two or three data words, so a typical state is three or four words.
//!
//! Readers accept exactly what the writers write: they decode, encode again and compare, so a
//! state read back is canonical by construction and no second format can slip in.

/// The header bit saying that the three counters of non-finite values end the state.
const COUNTERS: i64 = 1 << 16;

/// The most words a float state with `numeric` digit limbs can take: the header, the data words
/// (the digits and the top limb's second digit, two to a word) and the counters.
pub(crate) const fn float_state_max(numeric: usize) -> usize {
    1 + (numeric + 2).div_ceil(2) + 3
}

/// Appends the state of the integer sum `v`.
pub(crate) fn write_int_state(v: i128, out: &mut Vec<i64>) {
    let (lo, hi) = (v as i64, (v >> 64) as i64);
    if v == 0 {
    } else if hi == lo >> 63 {
        out.push(lo);
    } else {
        out.extend([lo, hi]);
    }
}

/// The integer sum whose state these words are.
pub(crate) fn read_int_state(words: &[i64]) -> Option<i128> {
    let v = match *words {
        [] => 0,
        [lo] => i128::from(lo),
        [lo, hi] => i128::from(lo as u64) | (i128::from(hi) << 64),
        _ => return None,
    };
    let mut again = Vec::with_capacity(2);
    write_int_state(v, &mut again);
    (again == words).then_some(v)
}

/// Appends the state of the float sum `sum(digits[i] * 2^(32 (base + i)))` plus the counters.
///
/// Every digit but the last is in `[0, 2^32)`; the last is signed, of any magnitude below
/// `2^63`: carried limbs (`limbs.rs`), or the five digits of a fixed-point sum (`fixed.rs`).
/// Equal values give equal words whatever the base and digits they came from.
pub(crate) fn write_float_state(
    base: usize,
    digits: &[i64],
    counters: [i64; 3],
    out: &mut Vec<i64>,
) {
    let (&top, low) = digits.split_last().expect("at least one digit");
    // The digits with the signed top one split in two: unsigned, then a signed one.
    let digit = |i: usize| -> i64 {
        match i.cmp(&low.len()) {
            std::cmp::Ordering::Less => low[i],
            std::cmp::Ordering::Equal => top & 0xffff_ffff,
            std::cmp::Ordering::Greater if i == low.len() + 1 => top >> 32,
            std::cmp::Ordering::Greater => top >> 63,
        }
    };
    let count = low.len() + 2;
    let has_counters = counters != [0; 3];
    let Some(first) = (0..count).find(|&i| digit(i) != 0) else {
        if has_counters {
            out.push(COUNTERS);
            out.extend(counters);
        }
        return;
    };
    out.push((base + first) as i64 | if has_counters { COUNTERS } else { 0 });
    let data_at = out.len();
    let mut i = first;
    while i < count {
        // The high digit of a word is the next one, or the sign past the last.
        let word = (digit(i) & 0xffff_ffff) | (digit(i + 1) << 32);
        out.push(word);
        i += 2;
    }
    // Drop words that only extend the sign of the one below.
    while out.len() - data_at >= 2 {
        let (top, below) = (out[out.len() - 1], out[out.len() - 2]);
        if top != below >> 63 {
            break;
        }
        out.pop();
    }
    debug_assert!(out.len() > data_at);
    if has_counters {
        out.extend(counters);
    }
}

/// Reads a float state into `limbs` (`numeric` digit limbs, then the three counters), which
/// must be zero; returns `None` unless the words are exactly what [`write_float_state`] writes
/// for the carried limbs it leaves.
pub(crate) fn read_float_state(words: &[i64], limbs: &mut [i64], numeric: usize) -> Option<()> {
    debug_assert!(limbs.iter().all(|&l| l == 0) && limbs.len() == numeric + 3);
    if words.len() > float_state_max(numeric) {
        return None;
    }
    let Some((&header, rest)) = words.split_first() else {
        return Some(());
    };
    let (data, counters) = if header & COUNTERS != 0 {
        rest.split_at_checked(rest.len().checked_sub(3)?)?
    } else {
        (rest, &[0; 3][..])
    };
    let lo = (header & 0xffff) as usize;
    let top = numeric - 1;
    if lo > top || lo + 2 * data.len() > numeric + 2 {
        return None;
    }
    // Place the digits; those at or past the top limb go into it, signed.
    for (k, &word) in data.iter().enumerate() {
        let last = k + 1 == data.len();
        let high = if last {
            word >> 32
        } else {
            word >> 32 & 0xffff_ffff
        };
        for (j, d) in [(0, word & 0xffff_ffff), (1, high)] {
            let i = lo + 2 * k + j;
            match i.saturating_sub(top) {
                0 if i < top => limbs[i] = d,
                0 => limbs[top] = limbs[top].checked_add(d)?,
                1 => limbs[top] = limbs[top].checked_add(d.checked_mul(1 << 32)?)?,
                // Only the sign can lie this far up; the comparison below checks it.
                _ if d == 0 || d == -1 => {}
                _ => return None,
            }
        }
    }
    limbs[numeric..].copy_from_slice(counters);
    // Sign digits of the last word below the top are not carried yet.
    crate::limbs::carry_limbs(&mut limbs[..numeric]);
    if !crate::limbs::is_carried(&limbs[..numeric]) {
        return None;
    }
    let mut again = Vec::with_capacity(words.len());
    let counters = [limbs[numeric], limbs[numeric + 1], limbs[numeric + 2]];
    write_float_state(0, &limbs[..numeric], counters, &mut again);
    (again == words).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_states_are_minimal() {
        for (v, len) in [
            (0i128, 0),
            (1, 1),
            (-1, 1),
            (i128::from(i64::MIN), 1),
            (i128::from(i64::MAX) + 1, 2),
            (i128::MIN, 2),
            (i128::MAX, 2),
        ] {
            let mut w = Vec::new();
            write_int_state(v, &mut w);
            assert_eq!(w.len(), len, "{v}");
            assert_eq!(read_int_state(&w), Some(v));
        }
        // A redundant sign word, and too many words.
        assert_eq!(read_int_state(&[5, 0]), None);
        assert_eq!(read_int_state(&[-5, -1]), None);
        assert_eq!(read_int_state(&[1, 2, 3]), None);
    }

    fn read(words: &[i64]) -> Option<Vec<i64>> {
        let mut limbs = vec![0; 13];
        read_float_state(words, &mut limbs, 10).map(|()| limbs)
    }

    #[test]
    fn float_states_round_trip_through_limbs() {
        // Carried limbs of f32's shape: 10 digits (top signed), 3 counters.
        let cases: [[i64; 13]; 6] = [
            [0; 13],
            [0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 7, 0xffff_ffff, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, -3, 0, 0, 0],
            [1, 0, 0, 0, 0, 0, 0, 0, 0, (1 << 61) + 5, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, -1],
        ];
        for limbs in cases {
            let mut w = Vec::new();
            write_float_state(0, &limbs[..10], [limbs[10], limbs[11], limbs[12]], &mut w);
            assert!(w.len() <= float_state_max(10));
            assert_eq!(read(&w).as_deref(), Some(&limbs[..]), "{w:?}");
        }
        // 7 * 2^64, -3 * 2^288, and the empty sum.
        let mut w = Vec::new();
        write_float_state(0, &cases[1][..10], [0; 3], &mut w);
        assert_eq!(w, [2, 7]);
        w.clear();
        write_float_state(0, &cases[3][..10], [0; 3], &mut w);
        assert_eq!(w, [9, -3]);
        w.clear();
        write_float_state(0, &cases[0][..10], [0; 3], &mut w);
        assert!(w.is_empty());
    }

    #[test]
    fn the_same_value_from_other_digits_writes_the_same_words() {
        // 2^32 - 1 as the top digit of a short run, and as an unsigned digit below a zero top.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_float_state(3, &[0, 0xffff_ffff], [0; 3], &mut a);
        write_float_state(4, &[0xffff_ffff, 0, 0], [0; 3], &mut b);
        assert_eq!(a, b);
        // -1 as a signed top digit, and as all-ones digits under a -1 top.
        let (mut c, mut d) = (Vec::new(), Vec::new());
        write_float_state(2, &[-1], [0; 3], &mut c);
        write_float_state(2, &[0xffff_ffff, 0xffff_ffff, -1], [0; 3], &mut d);
        assert_eq!(c, d);
        assert_eq!(c, [2, -1]);
    }

    #[test]
    fn non_canonical_float_states_are_refused() {
        for words in [
            vec![2, 7, 0],            // a redundant sign word
            vec![2, 1 << 32],         // lowest digit zero: lo should be 3
            vec![COUNTERS, 0, 0, 0],  // counters flagged but all zero
            vec![COUNTERS | 1, 5, 1], // too short for the counters
            vec![10, 1],              // lo past the top limb
            vec![8, 1, 1, 1],         // digits past the top limb
            vec![1 << 17 | 2, 7],     // unknown header bits
            vec![2],                  // a nonzero header without data
            vec![0; 20],              // too long
        ] {
            assert_eq!(read(&words), None, "{words:?}");
        }
    }
}
