//! Reads a ListPools body item by item, never as a whole tree.
//!
//! A `serde_json::Value` of a 1 MiB body costs far more than 1 MiB: each JSON value is a 32-byte
//! `Value` plus its map or vector, so a body of 340,000 empty objects (`[{},{},…]`) took 25 MB
//! at its peak and one of 30,000 tiny pools 39 MB, per call in flight, from an endpoint a tenant
//! names. Here the body is read with serde visitors: every field this module does not keep is
//! skipped without being built, every string kept is cut to its limit as it is read, and at most
//! [`MAX_FLAVORS`] flavors are held per pool and per state, so one item is a few KiB at most,
//! whatever it holds; each item is handed to the caller, which keeps at most
//! [`super::pools::MAX_POOLS`] of them, before the next is read.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::bounded;
use super::pools::{CREATED, DISPLAY_NAME, FLAVOR, MAX_FLAVORS, MESSAGE, NAME, WORD};

/// One item of `items`, as far as the operator uses it, every string already cut.
#[derive(Debug, Default)]
pub(crate) struct RawItem {
    /// `metadata.name`, if a string (cut to [`NAME`]).
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub created: Option<String>,
    pub pool_type: Option<String>,
    /// `status.phase`, cut to [`WORD`].
    pub phase: Option<String>,
    pub message: Option<String>,
    /// `spec.resources`: per flavor, desired and maximum nodes.
    pub spec: Spec,
    /// `status.resources`, per state in [`STATES`]' order.
    pub states: [StateNodes; 4],
    pub gpu_driver: Driver,
    pub npu_driver: Driver,
}

/// The node states of `status.resources`, in the order [`RawItem::states`] holds them.
pub(crate) const STATES: [&str; 4] = ["creating", "available", "abnormal", "deleting"];

/// A driver's `{version, state}`, each cut to [`WORD`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Driver {
    pub version: Option<String>,
    pub state: Option<String>,
}

/// `spec.resources`: the first [`MAX_FLAVORS`] flavors by name, and the flavor a bare count
/// belongs to.
#[derive(Debug, Default)]
pub(crate) struct Spec {
    /// Per flavor `(count, maxCount)`; for a flavor listed twice, each the first one sent.
    pub flavors: Bounded<(Option<i64>, Option<i64>)>,
    /// The one flavor the spec names, `Some(None)` when it names several.
    only: Option<Option<String>>,
}

impl Spec {
    /// The flavor a bare count of `status.resources` belongs to: the spec's only one.
    pub fn only_flavor(&self) -> Option<&str> {
        self.only.as_ref().and_then(|o| o.as_deref())
    }
}

/// One state of `status.resources`, in whichever form it came.
#[derive(Debug, Default)]
pub(crate) struct StateNodes {
    /// Nodes per flavor, from a list of `{flavor, count}`, one such object, or counts keyed by
    /// flavor.
    pub flavors: Bounded<Option<i64>>,
    /// A bare count (`"available": 3`).
    pub bare: Option<Option<i64>>,
}

/// At most [`MAX_FLAVORS`] flavors, the first by name, each flavor's values filled by the first
/// entry that has them. Keeping the first by name of each source keeps the first by name of
/// their union too.
#[derive(Debug)]
pub(crate) struct Bounded<T>(pub BTreeMap<String, T>);

impl<T> Default for Bounded<T> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

/// Fills the `None`s of a kept value with a later entry's.
pub(crate) trait Fill {
    fn fill(&mut self, later: Self);
}

impl Fill for Option<i64> {
    fn fill(&mut self, later: Self) {
        if self.is_none() {
            *self = later;
        }
    }
}

impl Fill for (Option<i64>, Option<i64>) {
    fn fill(&mut self, later: Self) {
        self.0.fill(later.0);
        self.1.fill(later.1);
    }
}

impl<T: Fill> Bounded<T> {
    fn add(&mut self, flavor: &str, value: T) {
        if flavor.is_empty() {
            return;
        }
        let flavor = bounded::cut(flavor, FLAVOR);
        if let Some(kept) = self.0.get_mut(flavor.as_ref()) {
            kept.fill(value);
            return;
        }
        self.0.insert(flavor.into_owned(), value);
        if self.0.len() > MAX_FLAVORS {
            self.0.pop_last();
        }
    }
}

/// What the top of the body turned out to be.
pub(crate) enum Body {
    /// An object with an `items` list (or `null`): its items were handed over.
    Items,
    /// JSON, but not an object.
    NotAnObject,
    /// An object without `items`.
    NoItems,
    /// An object whose `items` is this kind of value, not a list.
    ItemsNot(&'static str),
}

/// What [`read`] hands over, in order.
pub(crate) enum Event {
    /// `items` begins: forget the items of an earlier `items` key (JSON allows a key twice;
    /// the last one counts, as for the other keys).
    Items,
    /// An item of `items`; `None` when it is not an object.
    Item(Option<Box<RawItem>>),
}

/// Reads `body`, handing every item of `items` to `on` as it is read.
pub(crate) fn read(body: &[u8], on: &mut dyn FnMut(Event)) -> Result<Body, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let outcome = deserializer.deserialize_any(TopVisitor { on })?;
    deserializer.end()?;
    Ok(outcome)
}

struct TopVisitor<'a> {
    on: &'a mut dyn FnMut(Event),
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ListPools answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut outcome = Body::NoItems;
        while let Some(key) = map.next_key_seed(KeyIs(&["items"]))? {
            match key {
                Some(_) => {
                    (self.on)(Event::Items);
                    outcome = map.next_value_seed(ItemsSeed { on: &mut *self.on })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(outcome)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Body::NotAnObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Body, E> {
        Ok(Body::NotAnObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Body, E> {
        Ok(Body::NotAnObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Body, E> {
        Ok(Body::NotAnObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Body, E> {
        Ok(Body::NotAnObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Body, E> {
        Ok(Body::NotAnObject)
    }
    fn visit_unit<E>(self) -> Result<Body, E> {
        Ok(Body::NotAnObject)
    }
}

/// A key of an object, matched against the names a visitor reads: `Some(index)` of the name,
/// `None` for any other key. Nothing is allocated for it.
struct KeyIs(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|name| *name == key))
    }
}

struct ItemsSeed<'a> {
    on: &'a mut dyn FnMut(Event),
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Body;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Body, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of pools")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        while let Some(item) = seq.next_element_seed(Lenient(ItemFields::default()))? {
            (self.on)(Event::Item(item.map(|Lenient(fields)| Box::new(fields.0))));
        }
        Ok(Body::Items)
    }

    // `"items": null`, which a Go server sends for an empty list.
    fn visit_unit<E>(self) -> Result<Body, E> {
        Ok(Body::Items)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Body::ItemsNot("an object"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Body, E> {
        Ok(Body::ItemsNot("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Body, E> {
        Ok(Body::ItemsNot("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Body, E> {
        Ok(Body::ItemsNot("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Body, E> {
        Ok(Body::ItemsNot("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Body, E> {
        Ok(Body::ItemsNot("a string"))
    }
}

/// The fields of an object a visitor keeps: `NAMES` are the keys read, `field` reads the value
/// of `NAMES[index]`; every other key's value is skipped unread.
trait Fields: Sized {
    const NAMES: &'static [&'static str];
    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error>;
}

/// A value read as `F` when it is an object, and as `None`, skipped, when it is anything else.
struct Lenient<F>(F);

impl<'de, F: Fields> DeserializeSeed<'de> for Lenient<F> {
    type Value = Option<Lenient<F>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: Fields> Visitor<'de> for Lenient<F> {
    type Value = Option<Lenient<F>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(key) = map.next_key_seed(KeyIs(F::NAMES))? {
            match key {
                Some(index) => self.0.field(index, &mut map)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(self))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Reads an object value into `fields`; a value that is not an object leaves them empty.
fn object<'de, A: MapAccess<'de>, F: Fields + Default>(
    map: &mut A,
    fields: &mut F,
) -> Result<(), A::Error> {
    let read = map.next_value_seed(Lenient(F::default()))?;
    *fields = read.map(|Lenient(read)| read).unwrap_or_default();
    Ok(())
}

/// What a JSON value is, as far as a string or a count cares: a string is cut to the seed's
/// bytes as it is read, an object or a list skipped unread.
enum Scalar {
    Text(String),
    /// A number: an integer of 0 or more, else `None`.
    Number(Option<i64>),
    Other,
}

struct ScalarSeed(usize);

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(bounded::cut(v, self.0).into_owned()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Number(i64::try_from(v).ok()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Number((v >= 0).then_some(v)))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar::Number(None))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

/// The value as a string cut to `max`, if it is one.
fn text<'de, A: MapAccess<'de>>(map: &mut A, max: usize) -> Result<Option<String>, A::Error> {
    Ok(match map.next_value_seed(ScalarSeed(max))? {
        Scalar::Text(text) => Some(text),
        _ => None,
    })
}

/// The value as a count (an integer of 0 or more), else `None`.
fn count<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<i64>, A::Error> {
    Ok(match map.next_value_seed(ScalarSeed(0))? {
        Scalar::Number(n) => n,
        _ => None,
    })
}

#[derive(Default)]
struct ItemFields(RawItem);

impl Fields for ItemFields {
    const NAMES: &'static [&'static str] = &["metadata", "spec", "status"];

    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        let item = &mut self.0;
        match index {
            0 => {
                let mut metadata = Metadata::default();
                object(map, &mut metadata)?;
                item.name = metadata.name.filter(|n| !n.is_empty());
                item.created = metadata.created;
                item.display_name = metadata.labels.0;
            }
            1 => {
                let mut spec = SpecFields::default();
                object(map, &mut spec)?;
                item.pool_type = spec.pool_type;
                item.spec = spec.resources;
            }
            _ => {
                let mut status = StatusFields::default();
                object(map, &mut status)?;
                item.phase = status.phase;
                item.message = status.message;
                item.states = status.states;
                item.gpu_driver = status.drivers.gpu;
                item.npu_driver = status.drivers.npu;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Metadata {
    name: Option<String>,
    created: Option<String>,
    labels: Labels,
}

impl Fields for Metadata {
    const NAMES: &'static [&'static str] = &["name", "creationTimestamp", "labels"];

    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.name = text(map, NAME)?,
            1 => self.created = text(map, CREATED)?,
            _ => {
                self.labels = Labels::default();
                object(map, &mut self.labels)?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Labels(Option<String>);

impl Fields for Labels {
    const NAMES: &'static [&'static str] = &["os.modelarts/name"];

    fn field<'de, A: MapAccess<'de>>(&mut self, _: usize, map: &mut A) -> Result<(), A::Error> {
        self.0 = text(map, DISPLAY_NAME)?;
        Ok(())
    }
}

#[derive(Default)]
struct SpecFields {
    pool_type: Option<String>,
    resources: Spec,
}

impl Fields for SpecFields {
    const NAMES: &'static [&'static str] = &["type", "resources"];

    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.pool_type = text(map, WORD)?,
            _ => self.resources = map.next_value_seed(SpecResources)?,
        }
        Ok(())
    }
}

/// `spec.resources`: a list of `{flavor, count, maxCount}`; anything else is no flavor.
struct SpecResources;

impl<'de> DeserializeSeed<'de> for SpecResources {
    type Value = Spec;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Spec, D::Error> {
        d.deserialize_any(self)
    }
}

#[derive(Default)]
struct FlavorEntry {
    flavor: Option<String>,
    count: Option<i64>,
    max_count: Option<i64>,
}

impl Fields for FlavorEntry {
    const NAMES: &'static [&'static str] = &["flavor", "count", "maxCount"];

    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.flavor = text(map, FLAVOR)?,
            1 => self.count = count(map)?,
            _ => self.max_count = count(map)?,
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for SpecResources {
    type Value = Spec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Spec, A::Error> {
        let mut spec = Spec::default();
        while let Some(entry) = seq.next_element_seed(Lenient(FlavorEntry::default()))? {
            let Some(Lenient(FlavorEntry {
                flavor: Some(flavor),
                count,
                max_count,
            })) = entry
            else {
                continue;
            };
            spec.only = match spec.only.take() {
                None => Some(Some(flavor.clone())),
                Some(Some(only)) if only == flavor => Some(Some(only)),
                Some(_) => Some(None),
            };
            spec.flavors.add(&flavor, (count, max_count));
        }
        Ok(spec)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Spec, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Spec::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Spec, E> {
        Ok(Spec::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Spec, E> {
        Ok(Spec::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Spec, E> {
        Ok(Spec::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Spec, E> {
        Ok(Spec::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Spec, E> {
        Ok(Spec::default())
    }
    fn visit_unit<E>(self) -> Result<Spec, E> {
        Ok(Spec::default())
    }
}

#[derive(Default)]
struct StatusFields {
    phase: Option<String>,
    message: Option<String>,
    states: [StateNodes; 4],
    drivers: Drivers,
}

impl Fields for StatusFields {
    const NAMES: &'static [&'static str] = &["phase", "message", "resources", "driver"];

    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.phase = text(map, WORD)?,
            1 => self.message = text(map, MESSAGE)?,
            2 => {
                let mut resources = Resources::default();
                object(map, &mut resources)?;
                self.states = resources.0;
            }
            _ => {
                self.drivers = Drivers::default();
                object(map, &mut self.drivers)?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Resources([StateNodes; 4]);

impl Fields for Resources {
    const NAMES: &'static [&'static str] = &STATES;

    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        self.0[index] = map.next_value_seed(StateSeed)?;
        Ok(())
    }
}

/// One state of `status.resources`: a list of `{flavor, count}`, one such object (the SDK's
/// model), counts keyed by flavor, or a bare count.
struct StateSeed;

impl<'de> DeserializeSeed<'de> for StateSeed {
    type Value = StateNodes;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<StateNodes, D::Error> {
        d.deserialize_any(self)
    }
}

/// A `{flavor, count}` entry.
#[derive(Default)]
struct NodesEntry {
    flavor: Option<String>,
    count: Option<i64>,
}

impl Fields for NodesEntry {
    const NAMES: &'static [&'static str] = &["flavor", "count"];

    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.flavor = text(map, FLAVOR)?,
            _ => self.count = count(map)?,
        }
        Ok(())
    }
}

/// A key of a state object: `flavor`, `count`, or any other (a flavor, in the keyed form), cut.
struct StateKey;

enum StateKeyIs {
    Flavor,
    Count,
    Other(String),
}

impl<'de> DeserializeSeed<'de> for StateKey {
    type Value = StateKeyIs;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<StateKeyIs, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StateKey {
    type Value = StateKeyIs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<StateKeyIs, E> {
        Ok(match key {
            "flavor" => StateKeyIs::Flavor,
            "count" => StateKeyIs::Count,
            other => StateKeyIs::Other(bounded::cut(other, FLAVOR).into_owned()),
        })
    }
}

impl<'de> Visitor<'de> for StateSeed {
    type Value = StateNodes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StateNodes, A::Error> {
        let mut nodes = StateNodes::default();
        while let Some(entry) = seq.next_element_seed(Lenient(NodesEntry::default()))? {
            if let Some(Lenient(NodesEntry {
                flavor: Some(flavor),
                count,
            })) = entry
            {
                nodes.flavors.add(&flavor, count);
            }
        }
        Ok(nodes)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StateNodes, A::Error> {
        // One `{flavor, count}` when a `flavor` key holds a string; else counts keyed by
        // flavor (where `count` too is a flavor's name). Which one is known only at the end.
        let mut flavor: Option<Scalar> = None;
        let mut count: Option<Option<i64>> = None;
        let mut keyed = Bounded::<Option<i64>>::default();
        while let Some(key) = map.next_key_seed(StateKey)? {
            let value = map.next_value_seed(ScalarSeed(FLAVOR))?;
            match key {
                StateKeyIs::Flavor => flavor = Some(value),
                StateKeyIs::Count => {
                    count = match value {
                        Scalar::Number(n) => Some(n),
                        _ => None,
                    };
                }
                StateKeyIs::Other(name) => {
                    if let Scalar::Number(n) = value {
                        keyed.add(&name, n);
                    }
                }
            }
        }
        let mut nodes = StateNodes::default();
        match flavor {
            Some(Scalar::Text(flavor)) => nodes.flavors.add(&flavor, count.flatten()),
            Some(_) => {}
            None => {
                if let Some(n) = count {
                    keyed.add("count", n);
                }
                nodes.flavors = keyed;
            }
        }
        Ok(nodes)
    }

    fn visit_u64<E>(self, v: u64) -> Result<StateNodes, E> {
        Ok(StateNodes {
            bare: Some(i64::try_from(v).ok()),
            ..StateNodes::default()
        })
    }
    fn visit_i64<E>(self, v: i64) -> Result<StateNodes, E> {
        Ok(StateNodes {
            bare: Some((v >= 0).then_some(v)),
            ..StateNodes::default()
        })
    }
    fn visit_f64<E>(self, _: f64) -> Result<StateNodes, E> {
        Ok(StateNodes {
            bare: Some(None),
            ..StateNodes::default()
        })
    }
    fn visit_bool<E>(self, _: bool) -> Result<StateNodes, E> {
        Ok(StateNodes::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<StateNodes, E> {
        Ok(StateNodes::default())
    }
    fn visit_unit<E>(self) -> Result<StateNodes, E> {
        Ok(StateNodes::default())
    }
}

#[derive(Default)]
struct Drivers {
    gpu: Driver,
    npu: Driver,
}

impl Fields for Drivers {
    const NAMES: &'static [&'static str] = &["gpu", "npu"];

    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        let mut driver = DriverFields::default();
        object(map, &mut driver)?;
        let driver = Driver {
            version: driver.version,
            state: driver.state,
        };
        match index {
            0 => self.gpu = driver,
            _ => self.npu = driver,
        }
        Ok(())
    }
}

#[derive(Default)]
struct DriverFields {
    version: Option<String>,
    state: Option<String>,
}

impl Fields for DriverFields {
    const NAMES: &'static [&'static str] = &["version", "state"];

    fn field<'de, A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
        match index {
            0 => self.version = text(map, WORD)?,
            _ => self.state = text(map, WORD)?,
        }
        Ok(())
    }
}
