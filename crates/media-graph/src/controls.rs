//! The V4L2 control framework as userspace sees it (v4l2-ctrls-core.c, v4l2-ctrls-api.c): a
//! handler of scalar controls sorted by ID, the control-class entries it adds on its own, and the
//! ioctls on it — QUERYCTRL, QUERY_EXT_CTRL, QUERYMENU, G/S_CTRL and G/TRY/S_EXT_CTRLS — with the
//! core's validation, errno and `error_idx` rules. Device models declare controls and may adjust
//! a value being set (their `s_ctrl`); everything else is the core's.

use std::sync::Arc;

use ioctl_abi::videodev2::*;
use nix::errno::Errno;
use parking_lot::Mutex;

/// A control as a driver declares it (`v4l2_ctrl_config` after `v4l2_ctrl_fill`).
#[derive(Debug, Clone, PartialEq)]
pub struct CtrlDef {
    pub id: u32,
    pub name: String,
    pub ty: u32,
    pub min: i64,
    pub max: i64,
    pub step: u64,
    pub def: i64,
    pub flags: u32,
    /// Menu item names (menu controls); an empty name is a skipped item.
    pub menu: Vec<&'static str>,
}

impl CtrlDef {
    pub fn new(id: u32, name: &str, ty: u32, min: i64, max: i64, step: u64, def: i64) -> Self {
        Self {
            id,
            name: name.into(),
            ty,
            min,
            max,
            step,
            def,
            flags: 0,
            menu: Vec::new(),
        }
    }
    pub fn flags(mut self, flags: u32) -> Self {
        self.flags |= flags;
        self
    }
    /// `v4l2_ctrl_new_std_menu_items`: items 0..=len-1, default `def`.
    pub fn menu(id: u32, name: &str, items: &[&'static str], def: i64) -> Self {
        let mut d = Self::new(
            id,
            name,
            V4L2_CTRL_TYPE_MENU,
            0,
            items.len() as i64 - 1,
            1,
            def,
        );
        d.menu = items.to_vec();
        d
    }
    fn is_int(&self) -> bool {
        self.ty != V4L2_CTRL_TYPE_INTEGER64
    }
}

/// One control: its declaration and current value.
#[derive(Debug, Clone)]
pub struct Ctrl {
    pub def: CtrlDef,
    pub cur: i64,
}

/// The driver's `s_ctrl`: sees the value about to become current (and may round it) and the
/// other controls (to activate or deactivate them). An error leaves the control unchanged.
pub type SetHook = dyn Fn(&mut CtrlSet, u32, &mut i64) -> Result<(), Errno> + Send + Sync;

/// `V4L2_EVENT_CTRL_CH_*`: what a control event reports as changed.
pub const CH_VALUE: u32 = 1;
pub const CH_FLAGS: u32 = 2;
pub const CH_RANGE: u32 = 4;

/// A control change to announce: the control, what changed, and the file handle that changed
/// it (None: the driver), which does not hear of its own change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub id: u32,
    pub changes: u32,
    pub origin: Option<u64>,
}

/// Receives control changes (the event core queues `V4L2_EVENT_CTRL` to subscribers).
pub type Notify = dyn Fn(Change) + Send + Sync;

/// The controls of one handler, sorted by ID.
#[derive(Debug, Clone, Default)]
pub struct CtrlSet {
    ctrls: Vec<Ctrl>,
    /// Changes not yet announced (sent once the handler lock is released).
    pending: Vec<Change>,
}

/// Class names the core gives the control-class entries it adds.
fn class_name(class: u32) -> &'static str {
    match class {
        V4L2_CTRL_CLASS_USER => "User Controls",
        0x009a_0000 => "Camera Controls",
        0x009e_0000 => "Image Source Controls",
        V4L2_CTRL_CLASS_IMAGE_PROC => "Image Processing Controls",
        _ => "Unknown Control Class",
    }
}

/// `V4L2_CTRL_ID2WHICH`.
fn id2which(id: u32) -> u32 {
    id & 0x0fff_0000
}

/// `V4L2_CTRL_DRIVER_PRIV`: a driver-private ID within its class.
fn driver_priv(id: u32) -> bool {
    id & 0xffff >= 0x1000
}

impl CtrlSet {
    /// `v4l2_ctrl_new*` for each definition: the control plus, the first time a class appears,
    /// the class's own entry.
    pub fn new(defs: Vec<CtrlDef>) -> Self {
        let mut set = CtrlSet::default();
        for d in defs {
            let class_id = id2which(d.id) | 1;
            if d.id != class_id && set.find_exact(class_id).is_none() {
                set.insert(
                    CtrlDef::new(
                        class_id,
                        class_name(id2which(d.id)),
                        V4L2_CTRL_TYPE_CTRL_CLASS,
                        0,
                        0,
                        0,
                        0,
                    )
                    .flags(V4L2_CTRL_FLAG_READ_ONLY | V4L2_CTRL_FLAG_WRITE_ONLY),
                );
            }
            set.insert(d);
        }
        set
    }

    fn insert(&mut self, d: CtrlDef) {
        let cur = match d.ty {
            V4L2_CTRL_TYPE_BUTTON | V4L2_CTRL_TYPE_CTRL_CLASS => 0,
            _ => d.def,
        };
        let at = self.ctrls.partition_point(|c| c.def.id < d.id);
        self.ctrls.insert(at, Ctrl { def: d, cur });
    }

    fn find_exact(&self, id: u32) -> Option<usize> {
        self.ctrls.binary_search_by_key(&id, |c| c.def.id).ok()
    }

    /// `find_ref`: an ID, or under `V4L2_CID_PRIVATE_BASE` the n-th driver-private integer
    /// control of the user class (the old private-control numbering).
    fn find(&self, id: u32) -> Option<usize> {
        let id = id & V4L2_CTRL_ID_MASK;
        if id >= V4L2_CID_PRIVATE_BASE {
            let n = (id - V4L2_CID_PRIVATE_BASE) as usize;
            return self
                .ctrls
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    id2which(c.def.id) == V4L2_CTRL_CLASS_USER
                        && driver_priv(c.def.id)
                        && c.def.is_int()
                })
                .nth(n)
                .map(|(i, _)| i);
        }
        self.find_exact(id)
    }

    pub fn get(&self, id: u32) -> Option<&Ctrl> {
        self.find_exact(id).map(|i| &self.ctrls[i])
    }

    /// `v4l2_ctrl_activate`: sets or clears `V4L2_CTRL_FLAG_INACTIVE`.
    pub fn activate(&mut self, id: u32, active: bool) {
        if let Some(i) = self.find_exact(id) {
            let f = &mut self.ctrls[i].def.flags;
            let old = *f;
            if active {
                *f &= !V4L2_CTRL_FLAG_INACTIVE;
            } else {
                *f |= V4L2_CTRL_FLAG_INACTIVE;
            }
            if *f != old {
                self.pending.push(Change {
                    id,
                    changes: CH_FLAGS,
                    origin: None,
                });
            }
        }
    }

    /// `__v4l2_ctrl_modify_range`: new limits; the current value is brought into them.
    pub fn modify_range(&mut self, id: u32, min: i64, max: i64, step: u64, def: i64) {
        if let Some(i) = self.find_exact(id) {
            let c = &mut self.ctrls[i];
            let range_changed =
                (c.def.min, c.def.max, c.def.step, c.def.def) != (min, max, step, def);
            (c.def.min, c.def.max, c.def.step, c.def.def) = (min, max, step, def);
            let mut v = c.cur;
            if validate(&c.def, &mut v).is_err() {
                v = def;
            }
            let value_changed = v != c.cur;
            c.cur = v;
            if range_changed || value_changed {
                let changes = CH_RANGE | if value_changed { CH_VALUE } else { 0 };
                self.pending.push(Change {
                    id,
                    changes,
                    origin: None,
                });
            }
        }
    }

    /// A driver setting a control's value itself (`__v4l2_ctrl_s_ctrl_int64` and friends).
    pub fn set_value(&mut self, id: u32, mut value: i64) {
        if let Some(i) = self.find_exact(id) {
            if validate(&self.ctrls[i].def, &mut value).is_ok() && self.ctrls[i].cur != value {
                self.ctrls[i].cur = value;
                self.pending.push(Change {
                    id,
                    changes: CH_VALUE,
                    origin: None,
                });
            }
        }
    }
}

/// `std_validate_elem`: rounds integers into range on the step grid, normalises booleans,
/// checks menu items; buttons and class entries read as 0.
fn validate(d: &CtrlDef, v: &mut i64) -> Result<(), Errno> {
    match d.ty {
        V4L2_CTRL_TYPE_INTEGER | V4L2_CTRL_TYPE_INTEGER64 => {
            let half = (d.step / 2) as i64;
            let mut val = if d.ty == V4L2_CTRL_TYPE_INTEGER {
                *v as i32 as i64
            } else {
                *v
            };
            if d.max >= 0 && val >= d.max - half {
                val = d.max;
            } else {
                val = val.saturating_add(half);
            }
            val = val.clamp(d.min, d.max);
            let step = d.step.max(1) as i128;
            let offset = (val as i128 - d.min as i128) / step * step;
            *v = (d.min as i128 + offset) as i64;
            Ok(())
        }
        V4L2_CTRL_TYPE_BOOLEAN => {
            *v = i64::from(*v as i32 != 0);
            Ok(())
        }
        V4L2_CTRL_TYPE_MENU => {
            let i = *v as i32 as i64;
            if i < d.min || i > d.max {
                return Err(Errno::ERANGE);
            }
            if d.menu.get(i as usize).is_none_or(|n| n.is_empty()) {
                return Err(Errno::EINVAL);
            }
            *v = i;
            Ok(())
        }
        _ => {
            *v = 0;
            Ok(())
        }
    }
}

/// Which of the extended-control ioctls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtOp {
    Get,
    Try,
    Set,
}

/// A control handler: the controls behind one sub-device (or video) node.
pub struct Controls {
    set: Mutex<CtrlSet>,
    hook: Option<Arc<SetHook>>,
    notify: Mutex<Option<Arc<Notify>>>,
}

impl Controls {
    pub fn new(defs: Vec<CtrlDef>, hook: Option<Arc<SetHook>>) -> Arc<Self> {
        Arc::new(Self {
            set: Mutex::new(CtrlSet::new(defs)),
            hook,
            notify: Mutex::new(None),
        })
    }

    /// Where control changes go (the node's event queues).
    pub fn set_notify(&self, notify: Option<Arc<Notify>>) {
        *self.notify.lock() = notify;
    }

    /// Announces the pending changes, outside the handler lock.
    fn flush(&self) {
        let pending = std::mem::take(&mut self.set.lock().pending);
        if pending.is_empty() {
            return;
        }
        let notify = self.notify.lock().clone();
        if let Some(n) = notify {
            for c in pending {
                n(c);
            }
        }
    }

    /// Runs `f` on the controls (drivers updating ranges and values).
    pub fn with<R>(&self, f: impl FnOnce(&mut CtrlSet) -> R) -> R {
        let r = f(&mut self.set.lock());
        self.flush();
        r
    }

    /// `fill_event`: the `V4L2_EVENT_CTRL` payload for a control, or None if there is no such
    /// control. Class entries exist but never send an initial event (the caller checks).
    pub fn event(&self, id: u32, changes: u32) -> Option<(v4l2_event_ctrl, bool)> {
        let set = self.set.lock();
        let c = &set.ctrls[set.find(id)?];
        let mut e = v4l2_event_ctrl::zeroed();
        e.changes = changes;
        e.type_ = c.def.ty;
        e.value64 = if c.def.ty == V4L2_CTRL_TYPE_INTEGER64 {
            c.cur
        } else {
            c.cur as i32 as u32 as i64
        };
        e.flags = c.def.flags;
        e.minimum = c.def.min as i32;
        e.maximum = c.def.max as i32;
        e.step = if c.def.ty == V4L2_CTRL_TYPE_MENU {
            1
        } else {
            c.def.step as i32
        };
        e.default_value = c.def.def as i32;
        Some((e, c.def.ty == V4L2_CTRL_TYPE_CTRL_CLASS))
    }

    /// The control's real ID (a private-base alias resolved) if it exists.
    pub fn resolve(&self, id: u32) -> Option<u32> {
        let set = self.set.lock();
        set.find(id).map(|i| set.ctrls[i].def.id)
    }

    /// `v4l2_query_ext_ctrl`, including the `NEXT_CTRL`/`NEXT_COMPOUND` walk.
    pub fn query_ext(&self, raw_id: u32) -> Result<v4l2_query_ext_ctrl, Errno> {
        let set = self.set.lock();
        let id = raw_id & V4L2_CTRL_ID_MASK;
        let next = raw_id & (V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND);
        let found = if next != 0 && !set.ctrls.is_empty() {
            // All controls here are scalar: NEXT_COMPOUND alone matches none of them.
            if next == V4L2_CTRL_FLAG_NEXT_COMPOUND {
                None
            } else {
                set.ctrls.iter().position(|c| c.def.id > id)
            }
        } else {
            set.find(id)
        };
        let c = &set.ctrls[found.ok_or(Errno::EINVAL)?];
        let mut q = v4l2_query_ext_ctrl::zeroed();
        q.id = if id >= V4L2_CID_PRIVATE_BASE && next == 0 {
            id
        } else {
            c.def.id
        };
        ioctl_abi::set_cstr(&mut q.name, &c.def.name);
        q.flags = c.def.flags;
        q.type_ = c.def.ty;
        q.elem_size = if c.def.ty == V4L2_CTRL_TYPE_INTEGER64 {
            8
        } else {
            4
        };
        q.elems = 1;
        q.minimum = c.def.min;
        q.maximum = c.def.max;
        q.default_value = c.def.def;
        q.step = if c.def.ty == V4L2_CTRL_TYPE_MENU {
            1
        } else {
            c.def.step
        };
        Ok(q)
    }

    /// `v4l2_queryctrl`: QUERY_EXT_CTRL narrowed; 64-bit and other types report no range.
    pub fn queryctrl(&self, mut qc: v4l2_queryctrl) -> Result<v4l2_queryctrl, Errno> {
        let q = self.query_ext(qc.id)?;
        qc.id = q.id;
        qc.type_ = q.type_;
        qc.flags = q.flags;
        qc.name = q.name;
        (qc.minimum, qc.maximum, qc.step, qc.default_value) = match q.type_ {
            V4L2_CTRL_TYPE_INTEGER | V4L2_CTRL_TYPE_BOOLEAN | V4L2_CTRL_TYPE_MENU => (
                q.minimum as i32,
                q.maximum as i32,
                q.step as i32,
                q.default_value as i32,
            ),
            _ => (0, 0, 0, 0),
        };
        Ok(qc)
    }

    /// `v4l2_querymenu`.
    pub fn querymenu(&self, mut qm: v4l2_querymenu) -> Result<v4l2_querymenu, Errno> {
        let set = self.set.lock();
        let c = &set.ctrls[set.find(qm.id).ok_or(Errno::EINVAL)?];
        qm.reserved = 0;
        if c.def.ty != V4L2_CTRL_TYPE_MENU {
            return Err(Errno::EINVAL);
        }
        let i = qm.index as i64;
        if i < c.def.min || i > c.def.max {
            return Err(Errno::EINVAL);
        }
        let name = c
            .def
            .menu
            .get(i as usize)
            .filter(|n| !n.is_empty())
            .ok_or(Errno::EINVAL)?;
        let mut buf = [0u8; 32];
        ioctl_abi::set_cstr(&mut buf, name);
        qm.name = buf;
        Ok(qm)
    }

    /// `v4l2_g_ctrl`.
    pub fn g_ctrl(&self, mut c: v4l2_control) -> Result<v4l2_control, Errno> {
        let set = self.set.lock();
        let ctrl = &set.ctrls[set.find(c.id).ok_or(Errno::EINVAL)?];
        if !ctrl.def.is_int() {
            return Err(Errno::EINVAL);
        }
        if ctrl.def.flags & V4L2_CTRL_FLAG_WRITE_ONLY != 0 {
            return Err(Errno::EACCES);
        }
        c.value = ctrl.cur as i32;
        Ok(c)
    }

    /// `v4l2_s_ctrl`: validate, let the driver see it, make it current; returns the value now
    /// current.
    pub fn s_ctrl(&self, fh: u64, c: v4l2_control) -> Result<v4l2_control, Errno> {
        let r = self.s_ctrl_locked(fh, c);
        self.flush();
        r
    }

    fn s_ctrl_locked(&self, fh: u64, mut c: v4l2_control) -> Result<v4l2_control, Errno> {
        let mut set = self.set.lock();
        let i = set.find(c.id).ok_or(Errno::EINVAL)?;
        let d = &set.ctrls[i].def;
        if !d.is_int() {
            return Err(Errno::EINVAL);
        }
        if d.flags & V4L2_CTRL_FLAG_READ_ONLY != 0 {
            return Err(Errno::EACCES);
        }
        let mut v = c.value as i64;
        validate(d, &mut v)?;
        self.commit(&mut set, i, &mut v, true, fh)?;
        c.value = set.ctrls[i].cur as i32;
        Ok(c)
    }

    /// `try_or_set_cluster` for a one-control cluster: busy check, then (set only, and only
    /// when the value changes or the control executes on write) the driver's `s_ctrl`.
    fn commit(
        &self,
        set: &mut CtrlSet,
        i: usize,
        v: &mut i64,
        apply: bool,
        fh: u64,
    ) -> Result<(), Errno> {
        let d = &set.ctrls[i].def;
        if apply && d.flags & V4L2_CTRL_FLAG_GRABBED != 0 {
            return Err(Errno::EBUSY);
        }
        let changed = *v != set.ctrls[i].cur || d.flags & V4L2_CTRL_FLAG_EXECUTE_ON_WRITE != 0;
        if !apply || !changed {
            return Ok(());
        }
        let id = d.id;
        if let Some(hook) = &self.hook {
            hook(set, id, v)?;
        }
        if set.ctrls[i].cur != *v {
            set.ctrls[i].cur = *v;
            set.pending.push(Change {
                id,
                changes: CH_VALUE,
                origin: Some(fh),
            });
        }
        Ok(())
    }

    /// `v4l2_g_ext_ctrls` / `v4l2_try_ext_ctrls` / `v4l2_s_ext_ctrls` on a sub-device, for the
    /// scalar controls there are: `cs` and `items` (the client's array) are updated in place and
    /// go back to the client even on failure, as `video_usercopy` does for these ioctls.
    pub fn ext_ctrls(
        &self,
        fh: u64,
        op: ExtOp,
        cs: &mut v4l2_ext_controls,
        items: &mut [v4l2_ext_control],
    ) -> Result<(), Errno> {
        let r = self.ext_ctrls_locked(fh, op, cs, items);
        self.flush();
        r
    }

    fn ext_ctrls_locked(
        &self,
        fh: u64,
        op: ExtOp,
        cs: &mut v4l2_ext_controls,
        items: &mut [v4l2_ext_control],
    ) -> Result<(), Errno> {
        if cs.which == V4L2_CTRL_WHICH_REQUEST_VAL {
            // No request support on this media device.
            return Err(if cs.request_fd < 0 {
                Errno::EINVAL
            } else {
                Errno::EBADR
            });
        }
        let is_default = cs.which == V4L2_CTRL_WHICH_DEF_VAL;
        cs.error_idx = cs.count;
        if op != ExtOp::Get && is_default {
            return Err(Errno::EINVAL);
        }
        cs.which = id2which(cs.which);
        let mut set = self.set.lock();
        if cs.count == 0 {
            let w = cs.which;
            return if w == 0 || w == V4L2_CTRL_WHICH_DEF_VAL || set.find(w | 1).is_some() {
                Ok(())
            } else {
                Err(Errno::EINVAL)
            };
        }
        // prepare_ext_ctrls: error_idx points at the bad control (GET resets it to count).
        let mut idx = Vec::with_capacity(items.len());
        let prepared = (|| {
            for (i, c) in items.iter().enumerate() {
                cs.error_idx = i as u32;
                let id = c.id & V4L2_CTRL_ID_MASK;
                if cs.which != 0 && cs.which != V4L2_CTRL_WHICH_DEF_VAL && id2which(id) != cs.which
                {
                    return Err(Errno::EINVAL);
                }
                if id >= V4L2_CID_PRIVATE_BASE {
                    return Err(Errno::EINVAL);
                }
                let k = set.find(id).ok_or(Errno::EINVAL)?;
                if set.ctrls[k].def.flags & V4L2_CTRL_FLAG_DISABLED != 0 {
                    return Err(Errno::EINVAL);
                }
                idx.push(k);
            }
            Ok(())
        })();
        if op == ExtOp::Get {
            cs.error_idx = cs.count;
            prepared?;
            if idx
                .iter()
                .any(|&k| set.ctrls[k].def.flags & V4L2_CTRL_FLAG_WRITE_ONLY != 0)
            {
                return Err(Errno::EACCES);
            }
            for (c, &k) in items.iter_mut().zip(&idx) {
                let ctrl = &set.ctrls[k];
                let v = if is_default { ctrl.def.def } else { ctrl.cur };
                put_value(c, ctrl.def.ty, v);
            }
            return Ok(());
        }
        let set_op = op == ExtOp::Set;
        if let Err(e) = prepared {
            if set_op {
                cs.error_idx = cs.count;
            }
            return Err(e);
        }
        // validate_ctrls: values are validated (and rounded) in the client's array.
        let validated = (|| {
            cs.error_idx = cs.count;
            for (i, (c, &k)) in items.iter_mut().zip(&idx).enumerate() {
                cs.error_idx = i as u32;
                let d = &set.ctrls[k].def;
                if d.flags & V4L2_CTRL_FLAG_READ_ONLY != 0 {
                    return Err(Errno::EACCES);
                }
                if set_op && d.flags & V4L2_CTRL_FLAG_GRABBED != 0 {
                    return Err(Errno::EBUSY);
                }
                let mut v = get_value(c, d.ty);
                validate(d, &mut v)?;
                put_value(c, d.ty, v);
            }
            Ok(())
        })();
        if let Err(e) = validated {
            if set_op {
                cs.error_idx = cs.count;
            }
            return Err(e);
        }
        // The values in `items` are validated now; commit them one control at a time.
        for (i, (c, &k)) in items.iter_mut().zip(&idx).enumerate() {
            cs.error_idx = i as u32;
            let ty = set.ctrls[k].def.ty;
            let mut v = get_value(c, ty);
            self.commit(&mut set, k, &mut v, set_op, fh)?;
            put_value(c, ty, v);
        }
        Ok(())
    }
}

/// The value of an extended control as the core reads it: `value64` for 64-bit controls, the
/// `value` half of the union otherwise.
fn get_value(c: &v4l2_ext_control, ty: u32) -> i64 {
    let raw = c.value64;
    if ty == V4L2_CTRL_TYPE_INTEGER64 {
        raw
    } else {
        raw as i32 as i64
    }
}

/// Writes a value back; for 32-bit controls only the `value` half of the union changes.
fn put_value(c: &mut v4l2_ext_control, ty: u32, v: i64) {
    if ty == V4L2_CTRL_TYPE_INTEGER64 {
        c.value64 = v;
    } else {
        let raw = c.value64;
        c.value64 = (raw & !0xffff_ffff) | (v as i32 as u32 as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> Arc<Controls> {
        let hook: Arc<SetHook> = Arc::new(|set: &mut CtrlSet, id, v: &mut i64| {
            if id == V4L2_CID_TEST_PATTERN {
                set.activate(V4L2_CID_BRIGHTNESS, *v == 0);
            }
            if id == V4L2_CID_GAIN && *v > 32 {
                *v &= !1;
            }
            Ok(())
        });
        Controls::new(
            vec![
                CtrlDef::new(
                    V4L2_CID_BRIGHTNESS,
                    "Brightness",
                    V4L2_CTRL_TYPE_INTEGER,
                    0,
                    255,
                    1,
                    0,
                )
                .flags(V4L2_CTRL_FLAG_SLIDER),
                CtrlDef::new(V4L2_CID_GAIN, "Gain", V4L2_CTRL_TYPE_INTEGER, 8, 1024, 1, 8),
                CtrlDef::new(
                    V4L2_CID_PIXEL_RATE,
                    "Pixel Rate",
                    V4L2_CTRL_TYPE_INTEGER64,
                    1,
                    i32::MAX as i64,
                    1,
                    1,
                )
                .flags(V4L2_CTRL_FLAG_READ_ONLY),
                CtrlDef::menu(
                    V4L2_CID_TEST_PATTERN,
                    "Test Pattern",
                    &["Off", "", "Bars"],
                    0,
                ),
                CtrlDef::new(
                    V4L2_CID_USER_BASE + 0x1002,
                    "BLC, Auto",
                    V4L2_CTRL_TYPE_BOOLEAN,
                    0,
                    1,
                    1,
                    1,
                ),
            ],
            Some(hook),
        )
    }

    #[test]
    fn class_entries_and_enumeration() {
        let h = handler();
        let mut ids = Vec::new();
        let mut id = V4L2_CTRL_FLAG_NEXT_CTRL;
        while let Ok(q) = h.query_ext(id) {
            ids.push(q.id);
            id = q.id | V4L2_CTRL_FLAG_NEXT_CTRL;
        }
        assert_eq!(
            ids,
            vec![
                V4L2_CID_USER_CLASS,
                V4L2_CID_BRIGHTNESS,
                V4L2_CID_GAIN,
                V4L2_CID_USER_BASE + 0x1002,
                V4L2_CID_IMAGE_PROC_CLASS,
                V4L2_CID_PIXEL_RATE,
                V4L2_CID_TEST_PATTERN
            ]
        );
        let class = h.query_ext(V4L2_CID_USER_CLASS).unwrap();
        assert_eq!(ioctl_abi::cstr(&class.name), "User Controls");
        assert_eq!(
            class.flags,
            V4L2_CTRL_FLAG_READ_ONLY | V4L2_CTRL_FLAG_WRITE_ONLY
        );
        assert_eq!(
            h.query_ext(V4L2_CTRL_FLAG_NEXT_COMPOUND).err(),
            Some(Errno::EINVAL)
        );
        // The old private numbering reaches the driver-private user control.
        let p = h.query_ext(V4L2_CID_PRIVATE_BASE).unwrap();
        assert_eq!(p.id, V4L2_CID_PRIVATE_BASE);
        assert_eq!(ioctl_abi::cstr(&p.name), "BLC, Auto");
        assert!(h.query_ext(V4L2_CID_PRIVATE_BASE + 1).is_err());
        // QUERYCTRL hides 64-bit ranges.
        let mut qc = v4l2_queryctrl::zeroed();
        qc.id = V4L2_CID_PIXEL_RATE;
        let qc = h.queryctrl(qc).unwrap();
        assert_eq!((qc.minimum, qc.maximum, qc.default_value), (0, 0, 0));
    }

    #[test]
    fn g_s_ctrl_rules() {
        let h = handler();
        let c = |id, value| v4l2_control { id, value };
        assert_eq!(h.s_ctrl(1, c(V4L2_CID_BRIGHTNESS, 300)).unwrap().value, 255);
        assert_eq!(h.g_ctrl(c(V4L2_CID_BRIGHTNESS, 0)).unwrap().value, 255);
        assert_eq!(
            h.s_ctrl(1, c(V4L2_CID_GAIN, 51)).unwrap().value,
            50,
            "driver rounding"
        );
        assert_eq!(
            h.g_ctrl(c(V4L2_CID_PIXEL_RATE, 0)).err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(
            h.g_ctrl(c(V4L2_CID_USER_CLASS, 0)).err(),
            Some(Errno::EACCES)
        );
        assert_eq!(
            h.s_ctrl(1, c(V4L2_CID_USER_CLASS, 0)).err(),
            Some(Errno::EACCES)
        );
        assert_eq!(
            h.s_ctrl(1, c(V4L2_CID_TEST_PATTERN, 3)).err(),
            Some(Errno::ERANGE)
        );
        assert_eq!(
            h.s_ctrl(1, c(V4L2_CID_TEST_PATTERN, 1)).err(),
            Some(Errno::EINVAL)
        );
        h.s_ctrl(1, c(V4L2_CID_TEST_PATTERN, 2)).unwrap();
        let q = h.query_ext(V4L2_CID_BRIGHTNESS).unwrap();
        assert_ne!(q.flags & V4L2_CTRL_FLAG_INACTIVE, 0);
        assert_eq!(h.g_ctrl(c(0x0098_0999, 0)).err(), Some(Errno::EINVAL));
        let mut qm = v4l2_querymenu::zeroed();
        qm.id = V4L2_CID_TEST_PATTERN;
        qm.index = 1;
        assert_eq!(h.querymenu(qm).err(), Some(Errno::EINVAL));
        qm.index = 2;
        assert_eq!(ioctl_abi::cstr(&h.querymenu(qm).unwrap().name), "Bars");
    }

    #[test]
    fn changes_are_announced_after_the_lock() {
        let h = handler();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s2, h2) = (seen.clone(), Arc::downgrade(&h));
        h.set_notify(Some(Arc::new(move |c: Change| {
            // The handler is usable from the callback (no lock held).
            let h = h2.upgrade().unwrap();
            assert!(h.event(c.id, c.changes).is_some());
            s2.lock().push(c);
        })));
        let c = |id, value| v4l2_control { id, value };
        h.s_ctrl(7, c(V4L2_CID_BRIGHTNESS, 5)).unwrap();
        h.s_ctrl(7, c(V4L2_CID_BRIGHTNESS, 5)).unwrap(); // unchanged: no event
        h.s_ctrl(8, c(V4L2_CID_TEST_PATTERN, 2)).unwrap();
        h.with(|set| set.modify_range(V4L2_CID_GAIN, 8, 16, 1, 16));
        let ch = |id, changes, origin| Change {
            id,
            changes,
            origin,
        };
        assert_eq!(
            *seen.lock(),
            vec![
                ch(V4L2_CID_BRIGHTNESS, CH_VALUE, Some(7)),
                ch(V4L2_CID_BRIGHTNESS, CH_FLAGS, None),
                ch(V4L2_CID_TEST_PATTERN, CH_VALUE, Some(8)),
                ch(V4L2_CID_GAIN, CH_RANGE, None),
            ]
        );
        let (ev, class) = h.event(V4L2_CID_BRIGHTNESS, CH_VALUE).unwrap();
        assert!(!class);
        assert_eq!(
            ({ ev.value64 }, ev.maximum, ev.flags),
            (5, 255, V4L2_CTRL_FLAG_SLIDER | V4L2_CTRL_FLAG_INACTIVE)
        );
        assert!(h.event(V4L2_CID_USER_CLASS, 0).unwrap().1);
    }

    fn ext(id: u32, v: i64) -> v4l2_ext_control {
        let mut c = v4l2_ext_control::zeroed();
        c.id = id;
        c.value64 = v;
        c
    }

    #[test]
    fn ext_ctrls_error_idx() {
        let h = handler();
        let mut cs = v4l2_ext_controls::zeroed();
        cs.count = 2;
        let mut items = [ext(V4L2_CID_BRIGHTNESS, 10), ext(V4L2_CID_PIXEL_RATE, 5)];
        // A read-only control: TRY points at it, SET reports count.
        assert_eq!(
            h.ext_ctrls(1, ExtOp::Try, &mut cs, &mut items),
            Err(Errno::EACCES)
        );
        assert_eq!(cs.error_idx, 1);
        assert_eq!(
            h.ext_ctrls(1, ExtOp::Set, &mut cs, &mut items),
            Err(Errno::EACCES)
        );
        assert_eq!(cs.error_idx, 2);
        // An unknown control: TRY points at it, SET and GET report count.
        items[1] = ext(0x0098_0999, 0);
        assert_eq!(
            h.ext_ctrls(1, ExtOp::Try, &mut cs, &mut items),
            Err(Errno::EINVAL)
        );
        assert_eq!(cs.error_idx, 1);
        assert_eq!(
            h.ext_ctrls(1, ExtOp::Set, &mut cs, &mut items),
            Err(Errno::EINVAL)
        );
        assert_eq!(cs.error_idx, 2);
        assert_eq!(
            h.ext_ctrls(1, ExtOp::Get, &mut cs, &mut items),
            Err(Errno::EINVAL)
        );
        assert_eq!(cs.error_idx, 2);
        // A class mismatch.
        cs.which = V4L2_CTRL_CLASS_IMAGE_PROC;
        items[1] = ext(V4L2_CID_PIXEL_RATE, 0);
        assert_eq!(
            h.ext_ctrls(1, ExtOp::Get, &mut cs, &mut items),
            Err(Errno::EINVAL)
        );
        // Values: set, read back, defaults; 32-bit values leave the upper half alone.
        cs.which = 0;
        let mut items = [ext(V4L2_CID_BRIGHTNESS, 0x1234_5678_0000_0300)];
        cs.count = 1;
        h.ext_ctrls(1, ExtOp::Set, &mut cs, &mut items).unwrap();
        assert_eq!({ items[0].value64 }, 0x1234_5678_0000_00ff);
        cs.which = V4L2_CTRL_WHICH_DEF_VAL;
        h.ext_ctrls(1, ExtOp::Get, &mut cs, &mut items).unwrap();
        assert_eq!({ items[0].value64 } as i32, 0);
        assert_eq!(
            h.ext_ctrls(1, ExtOp::Set, &mut cs, &mut items),
            Err(Errno::EINVAL)
        );
        // count 0 checks the class.
        cs.count = 0;
        cs.which = V4L2_CTRL_CLASS_IMAGE_PROC;
        assert_eq!(h.ext_ctrls(1, ExtOp::Get, &mut cs, &mut []), Ok(()));
        cs.which = 0x009a_0000;
        assert_eq!(
            h.ext_ctrls(1, ExtOp::Get, &mut cs, &mut []),
            Err(Errno::EINVAL)
        );
    }
}
