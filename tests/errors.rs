//! Construction errors (`WindowError`) and robustness after panics.
//!
//! Allocation failure is made deterministic by this test binary's global allocator, which
//! refuses, on the calling thread only and only while a test asks it to, every request of at
//! least a given size: no test allocates large amounts of memory for real. The allocator also
//! counts the bytes each thread holds, to check that a failed construction "allocates nothing
//! that outlives the call" (`src/error.rs`).

mod model;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mavg::{
    MovingAverage, MutexAverage, RingAverage, ShardedAverage, SharedMovingAverage, WindowError,
    MAX_WINDOW,
};
use model::*;

// ---------------------------------------------------------------------------------------------
// A global allocator that fails on request
// ---------------------------------------------------------------------------------------------

struct FailingAllocator;

thread_local! {
    /// Requests of at least this many bytes are "big".
    static BIG: Cell<usize> = const { Cell::new(usize::MAX) };
    /// How many big requests still succeed; the next one fails.
    static BIG_ALLOWED: Cell<usize> = const { Cell::new(0) };
    /// The size of the last refused request.
    static REFUSED: Cell<usize> = const { Cell::new(0) };
    /// Bytes allocated minus bytes freed by this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Whether a request of `size` bytes is refused; counts allowed big requests down.
///
/// Never while the thread is panicking: a panic hook that captures a backtrace (with
/// `RUST_BACKTRACE` set) loads debug information in large allocations, and refusing those
/// would abort the test binary.
fn refuse(size: usize) -> bool {
    let big = BIG.try_with(Cell::get).unwrap_or(usize::MAX);
    if size < big || std::thread::panicking() {
        return false;
    }
    let allowed = BIG_ALLOWED.try_with(Cell::get).unwrap_or(0);
    if allowed > 0 {
        let _ = BIG_ALLOWED.try_with(|c| c.set(allowed - 1));
        false
    } else {
        let _ = REFUSED.try_with(|c| c.set(size));
        true
    }
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|c| c.set(c.get() + delta));
}

/// A new block of `layout` from `system` (plain or zeroed), or null if this size is refused;
/// what is handed out is accounted.
fn allocate(layout: Layout, system: impl FnOnce() -> *mut u8) -> *mut u8 {
    if refuse(layout.size()) {
        return std::ptr::null_mut();
    }
    let p = system();
    if !p.is_null() {
        account(layout.size() as isize);
    }
    p
}

// SAFETY: forwards to `System`, or returns null (a permitted allocation failure).
unsafe impl GlobalAlloc for FailingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        allocate(layout, || unsafe { System.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        allocate(layout, || unsafe { System.alloc_zeroed(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && refuse(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: FailingAllocator = FailingAllocator;

/// Runs `f` on this thread with requests of at least `big` bytes refused after the first
/// `allowed` of them; returns `f`'s result, the size of the refused request (0 if none) and the
/// bytes `f` left allocated.
fn with_failing_alloc<R>(big: usize, allowed: usize, f: impl FnOnce() -> R) -> (R, usize, isize) {
    let live = LIVE.with(Cell::get);
    REFUSED.with(|c| c.set(0));
    BIG_ALLOWED.with(|c| c.set(allowed));
    BIG.with(|c| c.set(big));
    let r = f();
    BIG.with(|c| c.set(usize::MAX));
    let leaked = LIVE.with(Cell::get) - live;
    (r, REFUSED.with(Cell::get), leaked)
}

// ---------------------------------------------------------------------------------------------
// Zero and TooLarge
// ---------------------------------------------------------------------------------------------

fn assert_zero_and_too_large<T: RefSample, M: MovingAverage<Item = T>>(name: &str) {
    assert_eq!(M::with_window(0).err(), Some(WindowError::Zero), "{name}");
    for window in [MAX_WINDOW + 1, MAX_WINDOW * 2, usize::MAX] {
        assert_eq!(
            M::with_window(window).err(),
            Some(WindowError::TooLarge {
                requested: window,
                max: MAX_WINDOW
            }),
            "{name}"
        );
    }
    // The smallest window works.
    let mut m = M::with_window(1).unwrap();
    assert_eq!(m.window(), 1);
    let mut model = Model::new(1);
    for x in [T::small(1), T::small(2)] {
        m.push(x);
        model.push(x);
    }
    check_all_reads(&m, &model).unwrap();
}

#[test]
fn zero_and_too_large_windows_are_refused_through_the_trait() {
    macro_rules! all {
        ($($t:ty),*) => {$(
            assert_zero_and_too_large::<$t, RingAverage<$t>>("RingAverage");
            assert_zero_and_too_large::<$t, MutexAverage<$t>>("MutexAverage");
            assert_zero_and_too_large::<$t, ShardedAverage<$t>>("ShardedAverage");
        )*};
    }
    all!(f64, f32, i8, u8, i16, u16, i32, u32, i64, u64, isize, usize);
}

#[test]
fn zero_and_too_large_windows_are_refused_by_the_inherent_constructors() {
    let too_large = |requested| WindowError::TooLarge {
        requested,
        max: MAX_WINDOW,
    };
    assert_eq!(RingAverage::<f64>::new(0).unwrap_err(), WindowError::Zero);
    assert_eq!(MutexAverage::<f64>::new(0).unwrap_err(), WindowError::Zero);
    assert_eq!(
        ShardedAverage::<f64>::new(0).unwrap_err(),
        WindowError::Zero
    );
    assert_eq!(
        ShardedAverage::<f64>::with_shards(0, 4).unwrap_err(),
        WindowError::Zero
    );
    assert_eq!(
        ShardedAverage::<f64>::with_shards(0, 0).unwrap_err(),
        WindowError::Zero
    );
    for w in [MAX_WINDOW + 1, usize::MAX] {
        assert_eq!(RingAverage::<u8>::new(w).unwrap_err(), too_large(w));
        assert_eq!(MutexAverage::<u8>::new(w).unwrap_err(), too_large(w));
        assert_eq!(ShardedAverage::<u8>::new(w).unwrap_err(), too_large(w));
        assert_eq!(
            ShardedAverage::<u8>::with_shards(w, 3).unwrap_err(),
            too_large(w)
        );
    }
    // Rejected windows allocate nothing that outlives the call (nothing at all is refused).
    let (_, refused, leaked) = with_failing_alloc(0, 0, || {
        assert!(ShardedAverage::<f64>::with_shards(MAX_WINDOW + 1, 2).is_err());
        assert!(RingAverage::<f64>::new(0).is_err());
    });
    assert_eq!(
        (refused, leaked),
        (0, 0),
        "a rejected window must not allocate"
    );
}

#[test]
fn max_window_is_accepted() {
    if cfg!(miri) {
        return;
    }
    // One byte per element: a 1 GiB reservation the kernel does not back until touched.
    let mut r = RingAverage::<u8>::new(MAX_WINDOW).unwrap();
    assert_eq!(r.window(), MAX_WINDOW);
    r.extend([u8::MAX, 1, 2]);
    assert_eq!((r.len(), r.sum(), r.average()), (3, 258, Some(86.0)));
    let m = MutexAverage::<i8>::new(MAX_WINDOW).unwrap();
    m.push(-3);
    assert_eq!((m.window(), m.sum()), (MAX_WINDOW, -3));
    // ShardedAverage initializes its 16 GiB of slots, so it is only checked to get past the
    // window check and up to the allocator (whose refusal is then reported).
    let (r, _, leaked) = with_failing_alloc(1 << 30, 0, || ShardedAverage::<u8>::new(MAX_WINDOW));
    assert!(
        matches!(
            r,
            Err(WindowError::Alloc {
                requested: MAX_WINDOW,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(leaked, 0);
}

// ---------------------------------------------------------------------------------------------
// Alloc
// ---------------------------------------------------------------------------------------------

/// A window whose shards are worth refusing; smaller under Miri, which initializes memory
/// slowly. Large enough that a shard's table (`8 * (N / 64 + 4).next_power_of_two()` bytes, 4
/// KiB at `2^14`) is a bigger request than the shard's header, which is boxed infallibly: a
/// refusal must hit the table.
const SHARDED_WINDOW: usize = if cfg!(miri) { 1 << 14 } else { 1 << 16 };

/// Runs `make` with requests of `big` bytes or more refused, and asserts that it reports
/// `Alloc { requested: w, bytes: w * size }` for a window of `w` elements of `size` bytes, that
/// exactly that request was refused, and that nothing leaked.
fn assert_refused<M: std::fmt::Debug>(
    big: usize,
    w: usize,
    size: usize,
    make: impl FnOnce() -> Result<M, WindowError>,
) {
    let (r, refused, leaked) = with_failing_alloc(big, 0, make);
    assert_eq!(
        r.unwrap_err(),
        WindowError::Alloc {
            requested: w,
            bytes: w * size
        }
    );
    assert_eq!((refused, leaked), (w * size, 0));
}

#[test]
fn ring_and_mutex_report_allocation_failure() {
    let w = if cfg!(miri) { 1 << 12 } else { 1 << 20 };
    assert_refused(w, w, 8, || RingAverage::<u64>::new(w));
    assert_refused(w, w, 4, || MutexAverage::<f32>::new(w));
    // The largest window: an 8 GiB request, refused here, reported rather than aborting.
    assert_refused(1 << 30, MAX_WINDOW, 8, || {
        RingAverage::<f64>::new(MAX_WINDOW)
    });

    // Through the trait.
    let (r, _, leaked) =
        with_failing_alloc(w, 0, || <RingAverage<i16> as MovingAverage>::with_window(w));
    assert!(matches!(r, Err(WindowError::Alloc { requested, .. }) if requested == w));
    assert_eq!(leaked, 0);
    // Nothing is left in a bad state: the same call succeeds once memory is available.
    let mut ok = RingAverage::<u64>::new(w).unwrap();
    ok.push(u64::MAX);
    assert_eq!(ok.sum(), u64::MAX as i128);
}

/// The byte sizes of `ShardedAverage`'s large requests for a window `w` of at least 256
/// (blocks of 64 slots): the pool's first segment of slots, and one shard's table of block
/// numbers (both hold `(w / 64 + 4).next_power_of_two()` entries).
fn sharded_requests(w: usize) -> (usize, usize) {
    let blocks = (w / 64 + 4).next_power_of_two();
    (blocks * 64 * 16, blocks * 8)
}

#[test]
fn sharded_reports_allocation_failure_and_frees_what_it_took() {
    let w = SHARDED_WINDOW;
    let (segment, table) = sharded_requests(w);
    // The pool's reservation fails.
    let (r, refused, leaked) = with_failing_alloc(segment, 0, || ShardedAverage::<f64>::new(w));
    match r {
        Err(WindowError::Alloc { requested, bytes }) => {
            assert_eq!(requested, w);
            assert!(
                bytes >= refused,
                "bytes {bytes} < the refused request {refused}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((refused, leaked), (segment, 0));
    // A shard's table fails, after the pool's three requests and some shards: whatever was
    // built is freed.
    for allowed in 3..8 {
        let (r, refused, leaked) =
            with_failing_alloc(table, allowed, || ShardedAverage::<u64>::with_shards(w, 8));
        assert!(
            matches!(r, Err(WindowError::Alloc { requested, .. }) if requested == w),
            "{r:?}"
        );
        assert!(refused >= table, "refused {refused}");
        assert_eq!(leaked, 0, "{allowed} requests allowed");
    }
    // Through the trait.
    let (r, _, leaked) = with_failing_alloc(segment, 0, || {
        <ShardedAverage<i32> as MovingAverage>::with_window(w)
    });
    assert!(matches!(r, Err(WindowError::Alloc { .. })), "{r:?}");
    assert_eq!(leaked, 0);
    // With enough memory all eight are there.
    assert_eq!(
        ShardedAverage::<u64>::with_shards(w, 8)
            .unwrap()
            .shard_count(),
        8
    );
}

#[test]
fn an_add_that_cannot_get_a_block_adds_nothing() {
    // Window 64: blocks of 16 slots, and a first segment of 8 blocks, which 8 shards take.
    let m = ShardedAverage::<u64>::with_shards(64, 8).unwrap();
    let mut this = &m;
    this.extend(1..=15);
    // The 16th add fills this thread's block and needs the next one, from a second segment
    // (8 blocks of 16 slots of 16 bytes), which the allocator refuses.
    let (r, refused, _) = with_failing_alloc(8 * 16 * 16, 0, || m.try_push(16));
    assert!(matches!(&r, Err(e) if e.window() == 64), "{r:?}");
    assert_eq!(refused, 8 * 16 * 16);
    assert_eq!((m.len(), m.sum()), (15, 120));
    // With memory it goes on, and the window slides as usual.
    this.extend(16..=100);
    assert_eq!(m.to_vec(), (37..=100).collect::<Vec<_>>());
    assert_eq!(m.sum(), (37..=100).sum::<u64>() as i128);
}

#[test]
fn zero_reserved_shards_still_work() {
    let m = ShardedAverage::<i64>::with_shards(3, 0).unwrap();
    assert_eq!(m.shard_count(), 0);
    assert_eq!((m.len(), m.average()), (0, None));
    m.extend_shared([1, 2, 3, 4]);
    assert_eq!(m.shard_count(), 1);
    assert_eq!((m.to_vec(), m.sum()), (vec![2, 3, 4], 9));
}

trait ExtendShared<T> {
    fn extend_shared(&self, xs: impl IntoIterator<Item = T>);
}

impl<T: mavg::Sample> ExtendShared<T> for ShardedAverage<T> {
    fn extend_shared(&self, xs: impl IntoIterator<Item = T>) {
        let mut this = self;
        this.extend(xs);
    }
}

#[test]
fn a_thread_that_cannot_get_a_shard_adds_nothing() {
    let w = SHARDED_WINDOW;
    let (_, big) = sharded_requests(w);
    let m = ShardedAverage::<u64>::new(w).unwrap();
    // This thread takes the one preallocated shard.
    m.push(7);
    std::thread::scope(|s| {
        s.spawn(|| {
            let (r, refused, leaked) = with_failing_alloc(big, 0, || m.try_push(1000));
            match r {
                Err(e) => {
                    assert_eq!(e.window(), w);
                    assert!(e.bytes() >= refused);
                    assert!(matches!(WindowError::from(e), WindowError::Alloc { requested, .. } if requested == w));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(leaked, 0);
            // Nothing was added.
            assert_eq!((m.len(), m.sum()), (1, 7));
            // `push` panics with the error instead.
            // (The allocator refuses nothing while the thread panics, so a panic hook that
            // symbolizes a backtrace under RUST_BACKTRACE=1 still gets its memory.)
            let (r, _, _) = with_failing_alloc(big, 0, || {
                catch_unwind(AssertUnwindSafe(|| SharedMovingAverage::push(&m, 1000)))
            });
            let message = r.unwrap_err();
            let message = message
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| message.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            assert!(message.contains("mavg"), "{message}");
            assert!(message.contains(&w.to_string()), "{message}");
            assert_eq!((m.len(), m.sum()), (1, 7));
            // With memory, this thread gets its shard and adds.
            m.try_push(8).unwrap();
        })
        .join()
        .unwrap();
    });
    assert_eq!(m.shard_count(), 2);
    assert_eq!((m.to_vec(), m.sum()), (vec![7, 8], 15));
}

// ---------------------------------------------------------------------------------------------
// Display and Error
// ---------------------------------------------------------------------------------------------

#[test]
fn errors_display_and_implement_error() {
    let errors = [
        WindowError::Zero,
        WindowError::TooLarge {
            requested: MAX_WINDOW + 1,
            max: MAX_WINDOW,
        },
        WindowError::Alloc {
            requested: 12345,
            bytes: 98760,
        },
    ];
    for e in &errors {
        let text = e.to_string();
        assert!(!text.trim().is_empty(), "{e:?}");
        let dynamic: &dyn std::error::Error = e;
        assert!(dynamic.source().is_none());
        assert_eq!(e.clone(), *e);
        assert!(!format!("{e:?}").is_empty());
    }
    let too_large = errors[1].to_string();
    assert!(
        too_large.contains(&(MAX_WINDOW + 1).to_string()),
        "{too_large}"
    );
    assert!(too_large.contains(&MAX_WINDOW.to_string()), "{too_large}");
    let alloc = errors[2].to_string();
    assert!(
        alloc.contains("12345") && alloc.contains("98760"),
        "{alloc}"
    );
    assert_ne!(errors[0], errors[1]);
    // Errors returned by the constructors display too, and box as `dyn Error`.
    let boxed: Box<dyn std::error::Error + Send + Sync> =
        Box::new(RingAverage::<f64>::new(0).unwrap_err());
    assert!(!boxed.to_string().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Panics around MutexAverage
// ---------------------------------------------------------------------------------------------

/// An iterator that yields `items` and then panics.
fn panicking_after<T: Copy>(items: Vec<T>) -> impl Iterator<Item = T> {
    let mut it = items.into_iter();
    std::iter::from_fn(move || match it.next() {
        Some(x) => Some(x),
        None => panic!("the user's iterator panics"),
    })
}

#[test]
fn mutex_average_stays_consistent_after_a_panic_in_extend() {
    let w = 5;
    let m = MutexAverage::<f64>::new(w).unwrap();
    let mut model = Model::new(w);
    let first = vec![1.5, -2.25, 1e300, 4.0];
    // Another thread extends through `&MutexAverage` and panics after four elements.
    std::thread::scope(|s| {
        let r = s
            .spawn(|| {
                let mut shared = &m;
                shared.extend(panicking_after(first.clone()));
            })
            .join();
        assert!(r.is_err(), "the extending thread must have panicked");
    });
    first.iter().for_each(|&x| model.push(x));
    check_all_reads(&m, &model).unwrap();
    // And through `&mut MutexAverage`, on this thread.
    let mut m = m;
    let second = vec![0.1, 0.2, 0.3];
    let r = catch_unwind(AssertUnwindSafe(|| {
        m.extend(panicking_after(second.clone()))
    }));
    assert!(r.is_err());
    second.iter().for_each(|&x| model.push(x));
    check_all_reads(&m, &model).unwrap();
    // Usable and exact afterwards.
    for x in [f64::MAX, f64::MAX, -1.0, 0.5, 0.25, 0.125] {
        SharedMovingAverage::push(&m, x);
        model.push(x);
        check_all_reads(&m, &model).unwrap();
    }
    let ring = m.into_inner();
    check_all_reads(&ring, &model).unwrap();
}

#[test]
fn mutex_average_stays_usable_after_a_panic_while_it_is_locked() {
    // `with` runs the caller's closure under the lock: a panic there poisons the mutex, which
    // the crate ignores (it never leaves the ring half-updated).
    let m = MutexAverage::<i64>::new(3).unwrap();
    let mut model = Model::new(3);
    for x in [i64::MIN, i64::MAX, -1] {
        SharedMovingAverage::push(&m, x);
        model.push(x);
    }
    std::thread::scope(|s| {
        let r = s
            .spawn(|| m.with(|ring| -> usize { panic!("panic under the lock: {}", ring.len()) }))
            .join();
        assert!(r.is_err());
    });
    check_all_reads(&m, &model).unwrap();
    for x in [5, i64::MIN, i64::MIN, i64::MIN] {
        SharedMovingAverage::push(&m, x);
        model.push(x);
        check_all_reads(&m, &model).unwrap();
    }
    assert_eq!(m.with(|ring| ring.iter().count()), 3);
    SharedMovingAverage::clear(&m);
    model.clear();
    check_all_reads(&m, &model).unwrap();
    assert!(!format!("{m:?}").is_empty());
    let ring = m.into_inner();
    check_all_reads(&ring, &model).unwrap();
}

#[test]
fn mutex_average_is_exact_after_many_threads_panic_mid_extend() {
    let threads = 8;
    let per_thread = if cfg!(miri) { 5 } else { 300 };
    let m = MutexAverage::<u32>::new(100_000).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let m = &m;
                s.spawn(move || {
                    let mut shared = m;
                    let items = (0..per_thread).map(|i| t * 1_000_000 + i).collect();
                    shared.extend(panicking_after(items));
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().is_err());
        }
    });
    let v = m.to_vec();
    assert_eq!(v.len() as u32, threads * per_thread);
    let mut sorted = v.clone();
    sorted.sort_unstable();
    let mut all: Vec<u32> = (0..threads)
        .flat_map(|t| (0..per_thread).map(move |i| t * 1_000_000 + i))
        .collect();
    all.sort_unstable();
    assert_eq!(sorted, all);
    check_sum(m.sum(), &v).unwrap();
    check_average(m.average(), &v).unwrap();
}
