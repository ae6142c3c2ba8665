//! The graph of one media device: entities, pads, links (with backlinks) and interfaces, with
//! object IDs drawn from one counter exactly as the kernel (>= 4.5) draws them: every entity,
//! pad, link, backlink, interface and interface link takes the next number, and the object type
//! sits in bits 24-31 of the ID. `topology_version` counts every object created or removed.

use std::sync::Arc;

use ioctl_abi::media::*;
use nix::errno::Errno;

use crate::audit::{Audit, Kind};

/// `media_gobj_gen_id`.
pub fn gen_id(kind: u32, local: u32) -> u32 {
    (kind << 24) | (local & 0x00ff_ffff)
}

/// What an entity is, as the core distinguishes it (`obj_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// A V4L2 sub-device.
    Subdev,
    /// The entity of a video device node.
    VideoNode,
}

/// A pad as a link end: entity id and pad index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PadRef {
    pub entity: u32,
    pub index: u16,
}

/// What an entity's `link_setup` sees of the other end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    pub pad: PadRef,
    pub kind: EntityKind,
}

/// Entity-specific behaviour: `media_entity_operations.link_setup`.
pub trait EntityOps: Send + Sync {
    /// Called for the source, then the sink, of a link whose ENABLED flag changes. An error from
    /// the sink rolls the source back (it is called again with the old flags).
    fn link_setup(&self, local: PadRef, remote: Remote, flags: u32) -> Result<(), Errno>;
}

#[derive(Debug, Clone)]
pub struct Pad {
    pub id: u32,
    pub index: u16,
    pub flags: u32,
}

pub struct Entity {
    pub id: u32,
    pub name: String,
    pub function: u32,
    pub flags: u32,
    pub kind: EntityKind,
    pub pads: Vec<Pad>,
    /// `entity->info.dev`: the device node numbers reported by MEDIA_IOC_ENUM_ENTITIES.
    pub devnode: Option<(u32, u32)>,
    ops: Option<Arc<dyn EntityOps>>,
}

impl std::fmt::Debug for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entity")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("function", &self.function)
            .field("pads", &self.pads)
            .finish()
    }
}

/// Ends of a link: two pads (data link) or an interface and an entity (interface link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    Data { source: PadRef, sink: PadRef },
    Interface { interface: u32, entity: u32 },
}

#[derive(Debug, Clone)]
pub struct Link {
    pub id: u32,
    pub ends: Ends,
    pub flags: u32,
    /// Backlinks mirror a data link for graph walks and are never reported to userspace.
    pub is_backlink: bool,
}

#[derive(Debug, Clone)]
pub struct Interface {
    pub id: u32,
    pub intf_type: u32,
    pub flags: u32,
    pub major: u32,
    pub minor: u32,
}

/// Describes an entity to register.
pub struct EntitySpec {
    pub name: String,
    pub function: u32,
    pub flags: u32,
    pub kind: EntityKind,
    /// Pad flags, by pad index.
    pub pads: Vec<u32>,
    pub ops: Option<Arc<dyn EntityOps>>,
}

pub struct Graph {
    audit: Arc<Audit>,
    last_id: u32,
    topology_version: u64,
    entities: Vec<Entity>,
    /// Every link object in creation order (the kernel's `mdev->links`).
    links: Vec<Link>,
    interfaces: Vec<Interface>,
}

impl Drop for Graph {
    fn drop(&mut self) {
        let pads = self.entities.iter().map(|e| e.pads.len()).sum();
        self.audit.remove(Kind::Entity, self.entities.len());
        self.audit.remove(Kind::Pad, pads);
        self.audit.remove(Kind::Link, self.links.len());
        self.audit.remove(Kind::Interface, self.interfaces.len());
    }
}

impl Graph {
    pub fn new(audit: Arc<Audit>) -> Self {
        Self {
            audit,
            last_id: 0,
            topology_version: 0,
            entities: Vec::new(),
            links: Vec::new(),
            interfaces: Vec::new(),
        }
    }

    /// `media_gobj_create`: the next ID of the shared counter.
    fn gobj(&mut self, kind: u32) -> u32 {
        self.last_id += 1;
        self.topology_version += 1;
        gen_id(kind, self.last_id)
    }

    pub fn topology_version(&self) -> u64 {
        self.topology_version
    }

    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Links userspace sees (no backlinks), in creation order.
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(|l| !l.is_backlink)
    }

    /// The other end of the enabled data link at (`entity`, `pad`), if one is enabled.
    pub fn remote_of(&self, entity: u32, pad: u16) -> Option<PadRef> {
        let here = PadRef { entity, index: pad };
        self.links().find_map(|l| match l.ends {
            Ends::Data { source, sink } if l.flags & MEDIA_LNK_FL_ENABLED != 0 => {
                if source == here {
                    Some(sink)
                } else if sink == here {
                    Some(source)
                } else {
                    None
                }
            }
            _ => None,
        })
    }

    pub fn entity(&self, id: u32) -> Option<&Entity> {
        self.entities.iter().find(|e| e.id == id)
    }

    pub fn entity_by_name(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    fn pad_id(&self, p: PadRef) -> Option<u32> {
        self.entity(p.entity)?
            .pads
            .get(p.index as usize)
            .map(|pad| pad.id)
    }

    /// `media_device_register_entity`: the entity, then its pads.
    pub fn add_entity(&mut self, spec: EntitySpec) -> u32 {
        let id = self.gobj(MEDIA_GRAPH_ENTITY);
        let pads: Vec<Pad> = spec
            .pads
            .iter()
            .enumerate()
            .map(|(i, flags)| Pad {
                id: self.gobj(MEDIA_GRAPH_PAD),
                index: i as u16,
                flags: *flags,
            })
            .collect();
        self.audit.add(Kind::Entity, 1);
        self.audit.add(Kind::Pad, pads.len());
        self.entities.push(Entity {
            id,
            name: spec.name,
            function: spec.function,
            flags: spec.flags,
            kind: spec.kind,
            pads,
            devnode: None,
            ops: spec.ops,
        });
        id
    }

    /// `media_device_unregister_entity` with the interfaces of its device nodes
    /// (`media_devnode_remove`): the entity, its pads, every data link to or from it (and
    /// backlinks), its interface links, and the interfaces left without a link. Returns false
    /// for an unknown entity.
    pub fn remove_entity(&mut self, id: u32) -> bool {
        let Some(pos) = self.entities.iter().position(|e| e.id == id) else {
            return false;
        };
        let e = self.entities.remove(pos);
        self.audit.remove(Kind::Entity, 1);
        self.audit.remove(Kind::Pad, e.pads.len());
        let mut orphan_candidates = Vec::new();
        let before = self.links.len();
        self.links.retain(|l| match l.ends {
            Ends::Data { source, sink } => source.entity != id && sink.entity != id,
            Ends::Interface { interface, entity } => {
                if entity == id {
                    orphan_candidates.push(interface);
                }
                entity != id
            }
        });
        self.audit.remove(Kind::Link, before - self.links.len());
        let links = &self.links;
        let before = self.interfaces.len();
        self.interfaces.retain(|i| {
            !orphan_candidates.contains(&i.id)
                || links.iter().any(
                    |l| matches!(l.ends, Ends::Interface { interface, .. } if interface == i.id),
                )
        });
        self.audit
            .remove(Kind::Interface, before - self.interfaces.len());
        self.topology_version += 1;
        true
    }

    /// `media_create_pad_link`: the link, then its backlink.
    pub fn add_link(&mut self, source: PadRef, sink: PadRef, flags: u32) -> Result<u32, Errno> {
        let src_ok = self
            .pad_flags(source)
            .is_some_and(|f| f & MEDIA_PAD_FL_SOURCE != 0);
        let sink_ok = self
            .pad_flags(sink)
            .is_some_and(|f| f & MEDIA_PAD_FL_SINK != 0);
        if !src_ok || !sink_ok {
            return Err(Errno::EINVAL);
        }
        let flags = flags & !MEDIA_LNK_FL_INTERFACE_LINK;
        let id = self.gobj(MEDIA_GRAPH_LINK);
        self.links.push(Link {
            id,
            ends: Ends::Data { source, sink },
            flags,
            is_backlink: false,
        });
        let back = self.gobj(MEDIA_GRAPH_LINK);
        self.links.push(Link {
            id: back,
            ends: Ends::Data { source, sink },
            flags,
            is_backlink: true,
        });
        self.audit.add(Kind::Link, 2);
        Ok(id)
    }

    fn pad_flags(&self, p: PadRef) -> Option<u32> {
        self.entity(p.entity)?
            .pads
            .get(p.index as usize)
            .map(|pad| pad.flags)
    }

    /// `media_devnode_create` + `media_create_intf_link`: a device node interface linked to its
    /// entity (ENABLED | IMMUTABLE). Also sets the entity's legacy `info.dev`.
    pub fn add_devnode_interface(
        &mut self,
        entity: u32,
        intf_type: u32,
        major: u32,
        minor: u32,
    ) -> Result<u32, Errno> {
        if self.entity(entity).is_none() {
            return Err(Errno::EINVAL);
        }
        let id = self.gobj(MEDIA_GRAPH_INTF_DEVNODE);
        self.interfaces.push(Interface {
            id,
            intf_type,
            flags: 0,
            major,
            minor,
        });
        self.audit.add(Kind::Interface, 1);
        let link = self.gobj(MEDIA_GRAPH_LINK);
        self.links.push(Link {
            id: link,
            ends: Ends::Interface {
                interface: id,
                entity,
            },
            flags: MEDIA_LNK_FL_ENABLED | MEDIA_LNK_FL_IMMUTABLE | MEDIA_LNK_FL_INTERFACE_LINK,
            is_backlink: false,
        });
        self.audit.add(Kind::Link, 1);
        if let Some(e) = self.entities.iter_mut().find(|e| e.id == entity) {
            e.devnode = Some((major, minor));
        }
        Ok(id)
    }

    /// `find_entity`: by id, or with MEDIA_ENT_ID_FLAG_NEXT the first entity with a larger id.
    pub fn find_entity(&self, id: u32) -> Option<&Entity> {
        let next = id & MEDIA_ENT_ID_FLAG_NEXT != 0;
        let id = id & !MEDIA_ENT_ID_FLAG_NEXT;
        self.entities
            .iter()
            .find(|e| (e.id == id && !next) || (e.id > id && next))
    }

    /// Data links whose source is `entity`, in creation order.
    pub fn outbound_links(&self, entity: u32) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(move |l| {
            !l.is_backlink && matches!(l.ends, Ends::Data { source, .. } if source.entity == entity)
        })
    }

    fn pad_desc(&self, p: PadRef) -> media_pad_desc {
        let mut d = media_pad_desc::zeroed();
        d.entity = p.entity;
        d.index = p.index;
        d.flags = self.pad_flags(p).unwrap_or(0);
        d
    }

    /// MEDIA_IOC_ENUM_ENTITIES.
    pub fn enum_entity(&self, id: u32) -> Result<media_entity_desc, Errno> {
        let e = self.find_entity(id).ok_or(Errno::EINVAL)?;
        let mut d = media_entity_desc::zeroed();
        d.id = e.id;
        ioctl_abi::set_cstr(&mut d.name, &e.name);
        d.type_ = e.function;
        d.flags = e.flags;
        d.pads = e.pads.len() as u16;
        d.links = self.outbound_links(e.id).count() as u16;
        // Functions outside the legacy range are reported in it (media-ctl <= 1.10 workaround).
        if e.function < MEDIA_ENT_F_OLD_BASE || e.function > MEDIA_ENT_F_TUNER {
            match e.kind {
                EntityKind::Subdev => d.type_ = MEDIA_ENT_F_V4L2_SUBDEV_UNKNOWN,
                EntityKind::VideoNode if e.function != MEDIA_ENT_F_IO_V4L => {
                    d.type_ = MEDIA_ENT_T_DEVNODE_UNKNOWN
                }
                EntityKind::VideoNode => {}
            }
        }
        if let Some((maj, min)) = e.devnode {
            d.set_dev(maj, min);
        }
        Ok(d)
    }

    /// MEDIA_IOC_ENUM_LINKS: the entity's pads and its outbound links.
    pub fn enum_links(
        &self,
        id: u32,
    ) -> Result<(Vec<media_pad_desc>, Vec<media_link_desc>), Errno> {
        let e = self.find_entity(id).ok_or(Errno::EINVAL)?;
        let pads = (0..e.pads.len())
            .map(|i| {
                self.pad_desc(PadRef {
                    entity: e.id,
                    index: i as u16,
                })
            })
            .collect();
        let links = self
            .outbound_links(e.id)
            .filter_map(|l| match l.ends {
                Ends::Data { source, sink } => {
                    let mut d = media_link_desc::zeroed();
                    d.source = self.pad_desc(source);
                    d.sink = self.pad_desc(sink);
                    d.flags = l.flags;
                    Some(d)
                }
                Ends::Interface { .. } => None,
            })
            .collect();
        Ok((pads, links))
    }

    /// The arrays of MEDIA_IOC_G_TOPOLOGY, complete.
    pub fn topology(&self) -> Topology {
        let entities = self
            .entities
            .iter()
            .map(|e| {
                let mut v = media_v2_entity::zeroed();
                v.id = e.id;
                ioctl_abi::set_cstr(&mut v.name, &e.name);
                v.function = e.function;
                v.flags = e.flags;
                v
            })
            .collect();
        let interfaces = self
            .interfaces
            .iter()
            .map(|i| {
                let mut v = media_v2_interface::zeroed();
                v.id = i.id;
                v.intf_type = i.intf_type;
                v.flags = i.flags;
                v.set_devnode(i.major, i.minor);
                v
            })
            .collect();
        let pads = self
            .entities
            .iter()
            .flat_map(|e| {
                e.pads.iter().map(move |p| {
                    let mut v = media_v2_pad::zeroed();
                    v.id = p.id;
                    v.entity_id = e.id;
                    v.flags = p.flags;
                    v.index = u32::from(p.index);
                    v
                })
            })
            .collect();
        let links = self
            .links()
            .map(|l| {
                let mut v = media_v2_link::zeroed();
                v.id = l.id;
                let (src, sink) = match l.ends {
                    Ends::Data { source, sink } => (
                        self.pad_id(source).unwrap_or(0),
                        self.pad_id(sink).unwrap_or(0),
                    ),
                    Ends::Interface { interface, entity } => (interface, entity),
                };
                v.source_id = src;
                v.sink_id = sink;
                v.flags = l.flags;
                v
            })
            .collect();
        Topology {
            version: self.topology_version,
            entities,
            interfaces,
            pads,
            links,
        }
    }

    fn find_data_link(&self, source: PadRef, sink: PadRef) -> Option<usize> {
        self.links
            .iter()
            .position(|l| !l.is_backlink && l.ends == Ends::Data { source, sink })
    }

    fn ops(&self, entity: u32) -> Option<(Arc<dyn EntityOps>, EntityKind)> {
        let e = self.entity(entity)?;
        Some((e.ops.clone()?, e.kind))
    }

    fn kind(&self, entity: u32) -> EntityKind {
        self.entity(entity)
            .map(|e| e.kind)
            .unwrap_or(EntityKind::Subdev)
    }

    /// MEDIA_IOC_SETUP_LINK, with the core's checks (`media_device_setup_link`,
    /// `__media_entity_setup_link`) and then the entities' `link_setup`, source first.
    /// `busy(entity)` tells whether an entity is part of a started pipeline.
    pub fn setup_link(
        &mut self,
        desc: &media_link_desc,
        busy: &dyn Fn(u32) -> bool,
    ) -> Result<(), Errno> {
        let source_e = self.find_entity(desc.source.entity).ok_or(Errno::EINVAL)?;
        let sink_e = self.find_entity(desc.sink.entity).ok_or(Errno::EINVAL)?;
        if desc.source.index as usize >= source_e.pads.len()
            || desc.sink.index as usize >= sink_e.pads.len()
        {
            return Err(Errno::EINVAL);
        }
        let source = PadRef {
            entity: source_e.id,
            index: desc.source.index,
        };
        let sink = PadRef {
            entity: sink_e.id,
            index: desc.sink.index,
        };
        let idx = self.find_data_link(source, sink).ok_or(Errno::EINVAL)?;
        let flags = desc.flags;
        let cur = self.links[idx].flags;
        let mask = MEDIA_LNK_FL_ENABLED;
        if cur & !mask != flags & !mask {
            return Err(Errno::EINVAL);
        }
        if cur & MEDIA_LNK_FL_IMMUTABLE != 0 {
            return if cur == flags {
                Ok(())
            } else {
                Err(Errno::EINVAL)
            };
        }
        if cur == flags {
            return Ok(());
        }
        if cur & MEDIA_LNK_FL_DYNAMIC == 0 && (busy(source.entity) || busy(sink.entity)) {
            return Err(Errno::EBUSY);
        }
        let src_remote = Remote {
            pad: sink,
            kind: self.kind(sink.entity),
        };
        let sink_remote = Remote {
            pad: source,
            kind: self.kind(source.entity),
        };
        let src_ops = self.ops(source.entity);
        let sink_ops = self.ops(sink.entity);
        if let Some((ops, _)) = &src_ops {
            ops.link_setup(source, src_remote, flags)?;
        }
        if let Some((ops, _)) = &sink_ops {
            if let Err(e) = ops.link_setup(sink, sink_remote, flags) {
                if let Some((ops, _)) = &src_ops {
                    let _ = ops.link_setup(source, src_remote, cur);
                }
                return Err(e);
            }
        }
        self.links[idx].flags = flags;
        if let Some(back) = self.links.get_mut(idx + 1).filter(|l| l.is_backlink) {
            back.flags = flags;
        }
        Ok(())
    }
}

/// A full MEDIA_IOC_G_TOPOLOGY answer.
#[derive(Debug, Clone)]
pub struct Topology {
    pub version: u64,
    pub entities: Vec<media_v2_entity>,
    pub interfaces: Vec<media_v2_interface>,
    pub pads: Vec<media_v2_pad>,
    pub links: Vec<media_v2_link>,
}
