//! The daemon's parts, as a library for the `mcemu` binary and the fuzz targets (fuzz/): the
//! nodes and their ioctl dispatch, instances and the control plane.

pub mod breakpoints;
pub mod buffers;
pub mod busfs;
pub mod control;
pub mod dispatch;
pub mod fuzzing;
pub mod inproc;
pub mod instance;
pub mod limits;
pub mod model;
pub mod nodes;
pub mod serve;

/// An error and its sources, joined with ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
