//! What an instance is: one of omap3isp's boards (built in) or a topology file or preset
//! (devices/topology), and how its graph and nodes are built through a registrar that knows
//! both kinds of node.

use std::sync::Arc;

use media_graph::{MediaDevice, MediaDeviceInfo};
use omap3isp::Board;
use topology::Topology;

#[derive(Debug, Clone)]
pub enum Model {
    Board(Board),
    Topology {
        /// The preset's name or the file's path, as given.
        name: String,
        topo: Arc<Topology>,
    },
}

/// Registers both omap3isp's and a topology's nodes.
pub trait Registrar:
    omap3isp::topology::NodeRegistrar
    + topology::device::NodeRegistrar<Error = <Self as omap3isp::topology::NodeRegistrar>::Error>
{
}

impl<R> Registrar for R where
    R: omap3isp::topology::NodeRegistrar
        + topology::device::NodeRegistrar<Error = <R as omap3isp::topology::NodeRegistrar>::Error>
{
}

impl Model {
    /// A preset name or a file path; the error says what is wrong with the file.
    pub fn topology(name_or_path: &str) -> Result<Self, String> {
        topology::load(name_or_path)
            .map(|t| Model::Topology {
                name: name_or_path.to_string(),
                topo: Arc::new(t),
            })
            .map_err(|e| e.to_string())
    }

    /// "beagleboard-xm", or "topology uvc-like".
    pub fn name(&self) -> String {
        match self {
            Model::Board(b) => b.name().to_string(),
            Model::Topology { name, .. } => format!("topology {name}"),
        }
    }

    /// A topology whose entities several drivers register: one media device they share.
    pub fn shared(&self) -> Option<&Arc<Topology>> {
        match self {
            Model::Topology { topo, .. } if topo.drivers().len() > 1 => Some(topo),
            _ => None,
        }
    }

    pub fn media_device_info(&self, kernel_version: u32) -> MediaDeviceInfo {
        match self {
            Model::Board(b) => b.media_device_info(kernel_version),
            Model::Topology { topo, .. } => topology::device::device_info(topo, kernel_version),
        }
    }

    /// Probe: the graph and every node but the media node, which the caller registers last.
    /// A topology's run-time state is kept alive by its nodes.
    pub fn build<R: Registrar>(
        &self,
        kernel_version: u32,
        media: &Arc<MediaDevice>,
        reg: &mut R,
    ) -> Result<(), <R as omap3isp::topology::NodeRegistrar>::Error> {
        match self {
            Model::Board(b) => omap3isp::topology::build(*b, media, reg).map(|_| ()),
            Model::Topology { topo, .. } => {
                topology::device::build(topo, kernel_version, media, reg).map(|_| ())
            }
        }
    }
}
