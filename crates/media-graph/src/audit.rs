//! Counters of live objects per kind. Every media device, graph object and file handle adds
//! itself when created and removes itself when its memory goes, so a test (or the control plane)
//! can check that nothing outlives what should own it and nothing goes early.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    MediaDevice,
    Entity,
    Pad,
    /// Data links, backlinks and interface links alike: each is a graph object.
    Link,
    Interface,
    FileHandle,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::MediaDevice,
        Kind::Entity,
        Kind::Pad,
        Kind::Link,
        Kind::Interface,
        Kind::FileHandle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::MediaDevice => "media_devices",
            Kind::Entity => "entities",
            Kind::Pad => "pads",
            Kind::Link => "links",
            Kind::Interface => "interfaces",
            Kind::FileHandle => "file_handles",
        }
    }
}

/// Live-object counters, shared by everything of one emulator instance.
#[derive(Debug, Default)]
pub struct Audit {
    counts: [AtomicI64; 6],
}

impl Audit {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn slot(&self, k: Kind) -> &AtomicI64 {
        &self.counts[Kind::ALL.iter().position(|x| *x == k).unwrap_or(0)]
    }

    pub fn add(&self, k: Kind, n: usize) {
        self.slot(k).fetch_add(n as i64, Ordering::SeqCst);
    }

    pub fn remove(&self, k: Kind, n: usize) {
        let prev = self.slot(k).fetch_sub(n as i64, Ordering::SeqCst);
        if prev < n as i64 {
            tracing::error!(kind = k.name(), "audit: more objects released than created");
        }
    }

    pub fn live(&self, k: Kind) -> i64 {
        self.slot(k).load(Ordering::SeqCst)
    }

    /// (kind name, live count) for every kind.
    pub fn snapshot(&self) -> Vec<(&'static str, i64)> {
        Kind::ALL
            .iter()
            .map(|k| (k.name(), self.live(*k)))
            .collect()
    }
}
