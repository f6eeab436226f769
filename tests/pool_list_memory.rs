//! What parsing a hostile ListPools answer costs in memory, measured by counting every
//! allocation: the pool-list parser must hold about the body's size, whatever the body holds,
//! since an endpoint a tenant names can send any megabyte (a `serde_json::Value` of such a body
//! peaked at 25 to 40 times its size). Its own test binary, so that no other test allocates
//! while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use poolwatch::modelarts::pools::MAX_POOLS_BODY_BYTES;
use poolwatch::modelarts::{PoolList, PoolListFilter};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most the parse allocates beyond what is held when it starts.
fn peak_of(body: &[u8]) -> (usize, PoolList) {
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let list = PoolList::parse(body, PoolListFilter::Current).unwrap_or_default();
    (PEAK.load(Ordering::Relaxed) - before, list)
}

/// `items` of `item`, repeated to just under the body limit.
fn body_of(item: &str) -> Vec<u8> {
    let count = (MAX_POOLS_BODY_BYTES - 64) / (item.len() + 1);
    let items = vec![item; count].join(",");
    format!(r#"{{"kind":"PoolList","items":[{items}]}}"#).into_bytes()
}

#[test]
fn hostile_pool_lists_cost_about_their_size_to_parse() {
    // Distinct names, so that every item is a usable pool the parser must consider.
    let mut many_pools = String::from(r#"{"items":["#);
    for i in 0.. {
        let item = format!(r#"{{"metadata":{{"name":"p{i}"}},"status":{{"phase":"Error"}}}},"#);
        if many_pools.len() + item.len() + 2 > MAX_POOLS_BODY_BYTES {
            break;
        }
        many_pools.push_str(&item);
    }
    many_pools.pop();
    many_pools.push_str("]}");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty objects", body_of("{}")),
        ("empty lists", body_of("[]")),
        ("zeros", body_of("0")),
        (
            "nested",
            body_of(r#"{"metadata":{"labels":{"a":[[[[{}]]]]}},"spec":{"resources":[{},{}]}}"#),
        ),
        (
            "many flavors",
            body_of(
                r#"{"metadata":{"name":"p"},"status":{"resources":{"available":{"f":1,"g":2,"h":3}}}}"#,
            ),
        ),
        ("many pools", many_pools.into_bytes()),
        (
            "one long string",
            format!(
                r#"{{"items":[{{"metadata":{{"name":"{}"}}}}]}}"#,
                "x".repeat(MAX_POOLS_BODY_BYTES - 100)
            )
            .into_bytes(),
        ),
    ];
    for (what, body) in &cases {
        assert!(body.len() <= MAX_POOLS_BODY_BYTES, "{what}: {}", body.len());
        let (peak, list) = peak_of(body);
        println!(
            "{what}: body {} bytes, parse peak {} bytes, {} pool(s), {} unusable",
            body.len(),
            peak,
            list.pools.len(),
            list.unusable
        );
        assert!(
            peak <= 2 * MAX_POOLS_BODY_BYTES,
            "{what}: a {}-byte body took {peak} bytes to parse",
            body.len()
        );
    }
}
