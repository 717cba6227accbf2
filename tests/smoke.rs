use mavg::*;

#[test]
fn smoke() {
    let mut r = RingAverage::<f64>::new(3).unwrap();
    r.extend([1e17, 1.0, 1.0, 1.0]);
    assert_eq!(r.average(), Some(1.0));
    let s = ShardedAverage::<f64>::new(3).unwrap();
    for x in [1e17, 1.0, 1.0, 1.0] { s.push(x); }
    assert_eq!(s.average(), Some(1.0));
    assert_eq!(s.to_vec(), [1.0, 1.0, 1.0]);
    let s = ShardedAverage::<i64>::new(1000).unwrap();
    for x in 0..100_000i64 { s.push(x); }
    assert_eq!(s.sum(), (99_000..100_000i64).sum::<i64>() as i128);
    assert_eq!(s.get(0), Some(99_000));
    assert_eq!(s.newest(), Some(99_999));
    assert_eq!(s.oldest(), Some(99_000));
    let mut r = RingAverage::<f64>::new(3).unwrap();
    r.extend([-1.5, 0.25, -3.0]);
    assert_eq!(r.sum(), -4.25);
    r.extend([f64::MAX, f64::MAX]);
    assert_eq!(r.sum(), f64::INFINITY);
    assert_eq!(r.average(), Some((-3.0 + f64::MAX / 3.0 * 2.0)) );
}
