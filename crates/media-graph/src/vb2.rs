//! A videobuf2 queue (videobuf2-core.c / videobuf2-v4l2.c as of Linux 7.0), single-planar:
//! buffer bookkeeping for MMAP and USERPTR, the state machine of REQBUFS, CREATE_BUFS,
//! QUERYBUF, PREPARE_BUF, QBUF, DQBUF, STREAMON, STREAMOFF, and the poll rules.
//!
//! The queue holds no pixels. The driver takes the buffers it owns with [`Queue::next_active`],
//! writes the frame itself (for USERPTR straight into the owner's memory through
//! [`UserMemory`]) and hands the buffer back with [`Queue::buffer_done`]. A DQBUF that would
//! block returns `EAGAIN` from [`Queue::dqbuf`] with `would_block` set: the caller parks it and
//! retries when the driver completes a buffer or the queue is cancelled.

use std::collections::VecDeque;
use std::sync::Arc;

use ioctl_abi::videodev2::*;
use nix::errno::Errno;

/// `VB2_MAX_FRAME`, the default `max_num_buffers`.
pub const MAX_BUFFERS: u32 = 32;
/// MMAP offset cookies: `(index << PLANE_INDEX_BITS | plane) << PAGE_SHIFT` (Linux 6.8+).
const PLANE_INDEX_BITS: u32 = 3;
const PAGE_SHIFT: u32 = 12;

/// Flags the core owns (`V4L2_BUFFER_MASK_FLAGS`).
const MASK_FLAGS: u32 = V4L2_BUF_FLAG_MAPPED
    | V4L2_BUF_FLAG_QUEUED
    | V4L2_BUF_FLAG_DONE
    | V4L2_BUF_FLAG_ERROR
    | V4L2_BUF_FLAG_PREPARED
    | V4L2_BUF_FLAG_TIMESTAMP_MASK;
/// Output flags passed on to the driver (`V4L2_BUFFER_OUT_FLAGS`).
const OUT_FLAGS: u32 =
    V4L2_BUF_FLAG_PFRAME | V4L2_BUF_FLAG_BFRAME | V4L2_BUF_FLAG_KEYFRAME | V4L2_BUF_FLAG_TIMECODE;

/// The memory of the process that queued a USERPTR buffer.
pub trait UserMemory: Send + Sync {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno>;
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno>;
    /// `get_user_pages` on `[addr, addr + len)`: every page mapped (and writable if `write`),
    /// else EFAULT. By default one byte per page through `read` (and `write`, unchanged).
    fn pin(&self, addr: u64, len: usize, write: bool) -> Result<(), Errno> {
        cuse::memory::pin_bytewise(
            addr,
            len,
            write,
            |a| self.read(a, 1),
            |a, b| self.write(a, b),
        )
    }
}

/// An MMAP buffer's memory: shared memory (a sealed memfd, whole pages) that the driver writes
/// frames into in place and that is handed to the client mapping it (through the preload shim).
/// A client's mapping keeps the memory alive after REQBUFS(0), unplug or the daemon's exit, as
/// mappings of kernel buffers do.
pub struct MemfdBuffer(cuse::shm::SharedMemory);

impl MemfdBuffer {
    pub fn new(len: u32) -> Result<Self, Errno> {
        cuse::shm::SharedMemory::new(len as usize).map(Self)
    }

    /// The memfd, to pass to the client that maps the buffer.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.fd()
    }

    pub fn len(&self) -> u64 {
        self.0.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes the buffer in place.
    pub fn fill<R>(&self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        self.0.fill(f)
    }
}

impl UserMemory for MemfdBuffer {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        self.0
            .read(usize::try_from(addr).map_err(|_| Errno::EFAULT)?, len)
    }
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.0
            .write(usize::try_from(addr).map_err(|_| Errno::EFAULT)?, data)
    }
}

/// `enum vb2_buffer_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufState {
    Dequeued,
    Prepared,
    /// Queued, not yet handed to the driver (before STREAMON).
    Queued,
    /// Owned by the driver.
    Active,
    Done,
    Error,
}

/// Where a queue's MMAP buffer memory is accounted: the daemon caps what one client may hold.
pub trait Budget: Send + Sync {
    /// Takes `bytes`; false when that would pass the cap (the buffer is not allocated).
    fn take(&self, bytes: u64) -> bool;
    fn give_back(&self, bytes: u64);
}

/// Memory taken from a [`Budget`], given back when the buffer goes.
pub struct Charge {
    budget: Arc<dyn Budget>,
    bytes: u64,
}

impl Charge {
    pub fn take(budget: &Arc<dyn Budget>, bytes: u64) -> Option<Self> {
        budget.take(bytes).then(|| Self {
            budget: budget.clone(),
            bytes,
        })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

pub struct Buffer {
    pub index: u32,
    pub state: BufState,
    /// Plane length: the setup size, or for USERPTR the length the client gave.
    pub length: u32,
    min_length: u32,
    offset: u32,
    pub userptr: u64,
    pub bytesused: u32,
    /// Flags that are not the core's (see `MASK_FLAGS`).
    flags: u32,
    pub field: u32,
    pub timestamp_ns: u64,
    pub sequence: u32,
    /// USERPTR: where the frame goes.
    pub memory: Option<Arc<dyn UserMemory>>,
    /// MMAP: the buffer's own memory.
    pub mmap: Option<Arc<MemfdBuffer>>,
    /// MMAP: what the memory took from the queue's budget.
    _charge: Option<Charge>,
}

/// A buffer the driver is filling: what it needs to write the frame, outside the queue's lock.
#[derive(Clone)]
pub struct ActiveBuffer {
    pub index: u32,
    /// Changes whenever the queue's buffers are cancelled or freed; a completion carrying an
    /// older epoch is dropped.
    pub epoch: u64,
    pub length: u32,
    /// Output buffers: the payload the client queued.
    pub bytesused: u32,
    pub userptr: u64,
    pub memory: Option<Arc<dyn UserMemory>>,
    /// MMAP: the buffer's memory, to write frames into in place.
    pub mmap: Option<Arc<MemfdBuffer>>,
    pub memory_type: u32,
}

pub struct Queue {
    type_: u32,
    is_output: bool,
    /// 0 until buffers are allocated (`VB2_MEMORY_UNKNOWN`).
    memory: u32,
    bufs: Vec<Buffer>,
    streaming: bool,
    error: bool,
    last_buffer_dequeued: bool,
    /// Done buffers in completion order.
    done: VecDeque<u32>,
    /// Buffers owned by the driver in queueing order (the driver's DMA queue).
    active: VecDeque<u32>,
    /// A blocking DQBUF is parked on this queue.
    pub waiting_in_dqbuf: bool,
    epoch: u64,
    budget: Option<Arc<dyn Budget>>,
    /// CREATE_BUFS reports `max_num_buffers` (Linux 6.8 and later).
    report_max_num_buffers: bool,
}

/// A DQBUF outcome that may wait: `Err(EAGAIN)` with `would_block` true means "park me".
pub struct DqResult {
    pub result: Result<v4l2_buffer, Errno>,
    pub would_block: bool,
}

impl Queue {
    pub fn new(type_: u32) -> Self {
        Self {
            type_,
            is_output: type_ == V4L2_BUF_TYPE_VIDEO_OUTPUT,
            memory: 0,
            bufs: Vec::new(),
            streaming: false,
            error: false,
            last_buffer_dequeued: false,
            done: VecDeque::new(),
            active: VecDeque::new(),
            waiting_in_dqbuf: false,
            epoch: 0,
            budget: None,
            report_max_num_buffers: true,
        }
    }

    /// The queue as a kernel of `kernel_version` runs it: before 6.8, CREATE_BUFS leaves
    /// `max_num_buffers` (then `reserved[0]`) zero and does not announce it in the caps.
    pub fn for_kernel(mut self, kernel_version: u32) -> Self {
        self.report_max_num_buffers = kernel_version >= crate::kernel_version_code(6, 8, 0);
        self
    }

    /// Accounts this queue's MMAP buffers to `budget` from now on: a buffer that would pass
    /// its cap is not allocated (REQBUFS/CREATE_BUFS give fewer buffers, ENOMEM for none).
    pub fn set_budget(&mut self, budget: Arc<dyn Budget>) {
        self.budget = Some(budget);
    }

    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    pub fn num_buffers(&self) -> u32 {
        self.bufs.len() as u32
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// `fill_buf_caps` for a queue with VB2_MMAP | VB2_USERPTR.
    pub fn caps() -> u32 {
        V4L2_BUF_CAP_SUPPORTS_ORPHANED_BUFS
            | V4L2_BUF_CAP_SUPPORTS_MMAP
            | V4L2_BUF_CAP_SUPPORTS_USERPTR
    }

    /// `vb2_verify_memory_type`.
    fn verify_memory_type(&self, memory: u32, type_: u32) -> Result<(), Errno> {
        if memory != V4L2_MEMORY_MMAP && memory != V4L2_MEMORY_USERPTR {
            // DMABUF is valid V4L2 but not among this queue's io_modes.
            return Err(Errno::EINVAL);
        }
        if type_ != self.type_ {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// `__vb2_queue_cancel`: streaming stops, the driver gives its buffers back (as ERROR, then
    /// discarded), the done list is dropped, every buffer is the client's again.
    pub fn cancel(&mut self) {
        self.streaming = false;
        self.error = false;
        self.last_buffer_dequeued = false;
        self.done.clear();
        self.active.clear();
        for b in &mut self.bufs {
            b.state = BufState::Dequeued;
        }
        self.epoch += 1;
    }

    fn free(&mut self) {
        self.cancel();
        self.bufs.clear();
        self.memory = 0;
    }

    /// VIDIOC_REQBUFS. `setup(count)` is the driver's `queue_setup`: it may lower the count and
    /// returns the plane size.
    pub fn reqbufs(
        &mut self,
        mut req: v4l2_requestbuffers,
        setup: impl FnOnce(&mut u32) -> Result<u32, Errno>,
    ) -> Result<v4l2_requestbuffers, Errno> {
        req.capabilities = Self::caps();
        req.flags = 0;
        req.reserved = [0; 3];
        self.verify_memory_type(req.memory, req.type_)?;
        if self.streaming {
            return Err(Errno::EBUSY);
        }
        if self.waiting_in_dqbuf && req.count != 0 {
            return Err(Errno::EBUSY);
        }
        if req.count == 0
            || !self.bufs.is_empty()
            || (self.memory != 0 && self.memory != req.memory)
        {
            self.free();
            if req.count == 0 {
                return Ok(req);
            }
        }
        let mut count = req.count.clamp(1, MAX_BUFFERS);
        self.memory = req.memory;
        let size = match setup(&mut count) {
            Ok(s) => s,
            Err(e) => {
                self.memory = 0;
                return Err(e);
            }
        };
        if count == 0 {
            self.memory = 0;
            return Err(Errno::ENOMEM);
        }
        let count = self.alloc(count, size);
        if count == 0 {
            self.memory = 0;
            return Err(Errno::ENOMEM);
        }
        req.count = count;
        Ok(req)
    }

    /// `__vb2_queue_alloc`: MMAP buffers get their memory now (fewer buffers when that runs
    /// out, ENOMEM for none).
    fn alloc(&mut self, count: u32, size: u32) -> u32 {
        let first = self.bufs.len() as u32;
        for index in first..first + count {
            let (mmap, charge) = if self.memory == V4L2_MEMORY_MMAP {
                let charge = match &self.budget {
                    Some(b) => match Charge::take(b, u64::from(size)) {
                        Some(c) => Some(c),
                        None => return index - first,
                    },
                    None => None,
                };
                match MemfdBuffer::new(size) {
                    Ok(m) => (Some(Arc::new(m)), charge),
                    Err(_) => return index - first,
                }
            } else {
                (None, None)
            };
            let memory = mmap.clone().map(|m| -> Arc<dyn UserMemory> { m });
            self.bufs.push(Buffer {
                index,
                state: BufState::Dequeued,
                length: size,
                min_length: size,
                offset: (index << PLANE_INDEX_BITS) << PAGE_SHIFT,
                userptr: 0,
                bytesused: 0,
                flags: 0,
                field: V4L2_FIELD_NONE,
                timestamp_ns: 0,
                sequence: 0,
                memory,
                mmap,
                _charge: charge,
            });
        }
        count
    }

    /// [`Self::mmap_buffer`] with the mapping's `MCEMU_VM_*` flags as the preload shim sends
    /// them.
    pub fn mmap_vm(&self, offset: u64, length: u64, vm: u32) -> Result<Arc<MemfdBuffer>, Errno> {
        use ioctl_abi::mcemu::*;
        self.mmap_buffer(
            offset,
            length,
            vm & MCEMU_VM_SHARED != 0,
            vm & MCEMU_VM_READ != 0,
            vm & MCEMU_VM_WRITE != 0,
        )
    }

    /// `vb2_mmap`: the MMAP buffer whose QUERYBUF offset is `offset`, for a shared mapping of
    /// `length` bytes that fits it, readable for a capture queue, writable for an output queue;
    /// EINVAL otherwise.
    pub fn mmap_buffer(
        &self,
        offset: u64,
        length: u64,
        shared: bool,
        read: bool,
        write: bool,
    ) -> Result<Arc<MemfdBuffer>, Errno> {
        if self.memory != V4L2_MEMORY_MMAP {
            return Err(Errno::EINVAL);
        }
        if !shared || (self.is_output && !write) || (!self.is_output && !read) {
            return Err(Errno::EINVAL);
        }
        let b = self
            .bufs
            .iter()
            .find(|b| u64::from(b.offset) == offset)
            .ok_or(Errno::EINVAL)?;
        let m = b.mmap.clone().ok_or(Errno::EINVAL)?;
        if length == 0 || length > m.len() {
            return Err(Errno::EINVAL);
        }
        Ok(m)
    }

    /// VIDIOC_CREATE_BUFS: `setup(count, requested size)` checks the format's size.
    pub fn create_bufs(
        &mut self,
        mut c: v4l2_create_buffers,
        setup: impl FnOnce(&mut u32) -> Result<u32, Errno>,
    ) -> Result<v4l2_create_buffers, Errno> {
        c.capabilities = Self::caps();
        c.flags = 0;
        c.reserved = [0; 6];
        if self.report_max_num_buffers {
            c.capabilities |= V4L2_BUF_CAP_SUPPORTS_MAX_NUM_BUFFERS;
            // `max_num_buffers` sits where 6.1's headers have reserved[0].
            c.reserved[0] = MAX_BUFFERS;
        }
        let verified = self.verify_memory_type(c.memory, c.format.type_);
        c.index = self.bufs.len() as u32;
        if c.count == 0 {
            return match verified {
                Err(Errno::EBUSY) | Ok(()) => Ok(c),
                Err(e) => Err(e),
            };
        }
        verified?;
        if self.memory != 0 && self.memory != c.memory {
            return Err(Errno::EINVAL);
        }
        if self.bufs.len() as u32 >= MAX_BUFFERS {
            return Err(Errno::ENOBUFS);
        }
        let mut count = c.count.min(MAX_BUFFERS - self.bufs.len() as u32);
        let size = setup(&mut count)?;
        if count == 0 {
            return Err(Errno::ENOMEM);
        }
        if self.bufs.is_empty() {
            self.memory = c.memory;
        }
        let count = self.alloc(count, size);
        if count == 0 {
            return Err(Errno::ENOMEM);
        }
        c.count = count;
        Ok(c)
    }

    /// `__fill_v4l2_buffer`.
    fn fill(&self, b: &Buffer) -> v4l2_buffer {
        let mut o = v4l2_buffer::zeroed();
        o.index = b.index;
        o.type_ = self.type_;
        o.memory = self.memory;
        o.flags = b.flags & !MASK_FLAGS;
        o.flags |= V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
        o.flags &= !V4L2_BUF_FLAG_TSTAMP_SRC_MASK;
        o.flags |= V4L2_BUF_FLAG_TSTAMP_SRC_EOF;
        o.field = b.field;
        o.timestamp.tv_sec = (b.timestamp_ns / 1_000_000_000) as i64;
        o.timestamp.tv_usec = ((b.timestamp_ns % 1_000_000_000) / 1000) as i64;
        o.sequence = b.sequence;
        o.length = b.length;
        o.bytesused = b.bytesused;
        o.m = if self.memory == V4L2_MEMORY_MMAP {
            u64::from(b.offset)
        } else {
            b.userptr
        };
        match b.state {
            BufState::Queued | BufState::Active => o.flags |= V4L2_BUF_FLAG_QUEUED,
            BufState::Error => o.flags |= V4L2_BUF_FLAG_ERROR | V4L2_BUF_FLAG_DONE,
            BufState::Done => o.flags |= V4L2_BUF_FLAG_DONE,
            BufState::Prepared => o.flags |= V4L2_BUF_FLAG_PREPARED,
            BufState::Dequeued => {}
        }
        o
    }

    /// VIDIOC_QUERYBUF.
    pub fn querybuf(&self, b: &v4l2_buffer) -> Result<v4l2_buffer, Errno> {
        if b.type_ != self.type_ {
            return Err(Errno::EINVAL);
        }
        let buf = self.bufs.get(b.index as usize).ok_or(Errno::EINVAL)?;
        Ok(self.fill(buf))
    }

    /// `vb2_queue_or_prepare_buf` checks.
    fn check(&self, b: &v4l2_buffer) -> Result<(), Errno> {
        if b.type_ != self.type_ || b.index as usize >= self.bufs.len() || b.memory != self.memory {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// `__buf_prepare`: takes the client's plane (USERPTR), then the driver's `buf_prepare`
    /// (given the buffer; returns the payload for capture buffers).
    fn prepare(
        &mut self,
        b: &v4l2_buffer,
        memory: Option<Arc<dyn UserMemory>>,
        buf_prepare: &dyn Fn(&Buffer) -> Result<u32, Errno>,
    ) -> Result<(), Errno> {
        let is_output = self.is_output;
        let mem_type = self.memory;
        let buf = &mut self.bufs[b.index as usize];
        if is_output {
            let length = if mem_type == V4L2_MEMORY_USERPTR {
                b.length
            } else {
                buf.length
            };
            if b.bytesused > length {
                return Err(Errno::EINVAL);
            }
            if b.field == V4L2_FIELD_ALTERNATE {
                return Err(Errno::EINVAL);
            }
        }
        if mem_type == V4L2_MEMORY_USERPTR {
            if b.length < buf.min_length || b.m == 0 {
                return Err(Errno::EINVAL);
            }
            let mem = memory.ok_or(Errno::EFAULT)?;
            // get_userptr pins the pages: every page mapped, and for a capture buffer
            // writable (a hole or a read-only mapping is EFAULT here, not a failed frame later).
            mem.pin(b.m, b.length as usize, !is_output)?;
            buf.userptr = b.m;
            buf.length = b.length;
            buf.memory = Some(mem);
        }
        // No cache hints on this queue: set_buffer_cache_hints clears them.
        let mut flags = b.flags
            & !MASK_FLAGS
            & !V4L2_BUF_FLAG_TSTAMP_SRC_MASK
            & !(V4L2_BUF_FLAG_NO_CACHE_INVALIDATE | V4L2_BUF_FLAG_NO_CACHE_CLEAN);
        if is_output {
            flags &= !V4L2_BUF_FLAG_TIMECODE;
            buf.field = b.field;
            buf.bytesused = if b.bytesused != 0 {
                b.bytesused
            } else {
                buf.length
            };
        } else {
            flags &= !(OUT_FLAGS | V4L2_BUF_FLAG_LAST);
            buf.bytesused = 0;
        }
        buf.flags = flags;
        buf.timestamp_ns = 0;
        buf.sequence = 0;
        let payload = buf_prepare(buf)?;
        let buf = &mut self.bufs[b.index as usize];
        if !is_output {
            buf.bytesused = payload;
        }
        Ok(())
    }

    /// VIDIOC_PREPARE_BUF.
    pub fn prepare_buf(
        &mut self,
        b: &v4l2_buffer,
        memory: Option<Arc<dyn UserMemory>>,
        buf_prepare: &dyn Fn(&Buffer) -> Result<u32, Errno>,
    ) -> Result<v4l2_buffer, Errno> {
        self.check(b)?;
        if self.bufs[b.index as usize].state != BufState::Dequeued {
            return Err(Errno::EINVAL);
        }
        self.prepare(b, memory, buf_prepare)?;
        let buf = &mut self.bufs[b.index as usize];
        buf.state = BufState::Prepared;
        Ok(self.fill(&self.bufs[b.index as usize]))
    }

    /// VIDIOC_QBUF. Returns the filled buffer and whether the driver now owns it (streaming).
    pub fn qbuf(
        &mut self,
        b: &v4l2_buffer,
        memory: Option<Arc<dyn UserMemory>>,
        buf_prepare: &dyn Fn(&Buffer) -> Result<u32, Errno>,
    ) -> Result<(v4l2_buffer, bool), Errno> {
        self.check(b)?;
        if self.error {
            return Err(Errno::EIO);
        }
        match self.bufs[b.index as usize].state {
            BufState::Dequeued => self.prepare(b, memory, buf_prepare)?,
            BufState::Prepared => {}
            _ => return Err(Errno::EINVAL),
        }
        let to_driver = self.streaming;
        let buf = &mut self.bufs[b.index as usize];
        buf.state = if to_driver {
            BufState::Active
        } else {
            BufState::Queued
        };
        if to_driver {
            self.active.push_back(b.index);
        }
        Ok((self.fill(&self.bufs[b.index as usize]), to_driver))
    }

    /// VIDIOC_DQBUF (`__vb2_wait_for_done_vb` without the wait).
    pub fn dqbuf(&mut self, b: &v4l2_buffer, nonblocking: bool) -> DqResult {
        let fail = |e| DqResult {
            result: Err(e),
            would_block: false,
        };
        if b.type_ != self.type_ {
            return fail(Errno::EINVAL);
        }
        if !self.streaming {
            return fail(Errno::EINVAL);
        }
        if self.error {
            return fail(Errno::EIO);
        }
        if self.last_buffer_dequeued {
            return fail(Errno::EPIPE);
        }
        let Some(index) = self.done.pop_front() else {
            return DqResult {
                result: Err(Errno::EAGAIN),
                would_block: !nonblocking,
            };
        };
        let buf = &self.bufs[index as usize];
        let mut out = self.fill(buf);
        if !self.is_output && out.flags & V4L2_BUF_FLAG_LAST != 0 {
            self.last_buffer_dequeued = true;
        }
        out.flags &= !V4L2_BUF_FLAG_DONE;
        self.bufs[index as usize].state = BufState::Dequeued;
        DqResult {
            result: Ok(out),
            would_block: false,
        }
    }

    /// VIDIOC_STREAMON (`vb2_core_streamon`), once the driver's checks passed. Queued buffers go
    /// to the driver. Returns false if the queue was already streaming.
    pub fn streamon(&mut self, type_: u32) -> Result<bool, Errno> {
        if type_ != self.type_ {
            return Err(Errno::EINVAL);
        }
        if self.streaming {
            return Ok(false);
        }
        if self.bufs.is_empty() {
            return Err(Errno::EINVAL);
        }
        Ok(true)
    }

    /// Marks the queue streaming and gives the driver the buffers queued so far.
    pub fn start(&mut self) {
        self.streaming = true;
        let mut queued: Vec<u32> = self
            .bufs
            .iter()
            .filter(|b| b.state == BufState::Queued)
            .map(|b| b.index)
            .collect();
        queued.sort_unstable();
        for i in queued {
            self.bufs[i as usize].state = BufState::Active;
            self.active.push_back(i);
        }
    }

    /// The oldest buffer the driver owns, for filling.
    pub fn next_active(&self) -> Option<ActiveBuffer> {
        let index = *self.active.front()?;
        let b = &self.bufs[index as usize];
        Some(ActiveBuffer {
            index,
            epoch: self.epoch,
            length: b.length,
            bytesused: b.bytesused,
            userptr: b.userptr,
            memory: b.memory.clone(),
            mmap: b.mmap.clone(),
            memory_type: self.memory,
        })
    }

    /// Buffers the driver owns.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// `vb2_buffer_done` for the driver's oldest buffer. False if the buffer was cancelled
    /// meanwhile (the completion is dropped).
    pub fn buffer_done(
        &mut self,
        a: &ActiveBuffer,
        error: bool,
        timestamp_ns: u64,
        sequence: u32,
        field: u32,
    ) -> bool {
        if a.epoch != self.epoch || self.active.front() != Some(&a.index) {
            return false;
        }
        self.active.pop_front();
        let b = &mut self.bufs[a.index as usize];
        b.state = if error {
            BufState::Error
        } else {
            BufState::Done
        };
        b.timestamp_ns = timestamp_ns;
        b.sequence = sequence;
        b.field = field;
        self.done.push_back(a.index);
        true
    }

    /// `vb2_core_poll` for this queue (without events).
    pub fn poll(&self) -> u32 {
        if !self.streaming || self.error {
            return libc::POLLERR as u32;
        }
        if self.done.is_empty() && self.last_buffer_dequeued {
            return (libc::POLLIN | libc::POLLRDNORM) as u32;
        }
        if self.done.is_empty() {
            return 0;
        }
        if self.is_output {
            (libc::POLLOUT | libc::POLLWRNORM) as u32
        } else {
            (libc::POLLIN | libc::POLLRDNORM) as u32
        }
    }

    /// VIDIOC_STREAMOFF (`vb2_core_streamoff`).
    pub fn streamoff(&mut self, type_: u32) -> Result<(), Errno> {
        if type_ != self.type_ {
            return Err(Errno::EINVAL);
        }
        self.cancel();
        Ok(())
    }

    /// `vb2_queue_release`: at close, or at unregister for drivers using
    /// `vb2_video_unregister_device`.
    pub fn release(&mut self) {
        self.free();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Mem(Mutex<HashMap<u64, Vec<u8>>>);
    impl UserMemory for Mem {
        fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
            let m = self.0.lock();
            for (base, v) in m.iter() {
                if addr >= *base && addr.saturating_add(len as u64) <= base + v.len() as u64 {
                    let s = (addr - base) as usize;
                    return Ok(v[s..s + len].to_vec());
                }
            }
            Err(Errno::EFAULT)
        }
        fn write(&self, _addr: u64, _data: &[u8]) -> Result<(), Errno> {
            Ok(())
        }
    }

    fn req(count: u32, memory: u32) -> v4l2_requestbuffers {
        let mut r = v4l2_requestbuffers::zeroed();
        r.count = count;
        r.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        r.memory = memory;
        r
    }

    fn buf(index: u32, memory: u32) -> v4l2_buffer {
        let mut b = v4l2_buffer::zeroed();
        b.index = index;
        b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = memory;
        b
    }

    const OK: &dyn Fn(&Buffer) -> Result<u32, Errno> = &|b: &Buffer| Ok(b.min_length);

    #[test]
    fn reqbufs_rules() {
        let mut q = Queue::new(V4L2_BUF_TYPE_VIDEO_CAPTURE);
        let r = q.reqbufs(req(4, V4L2_MEMORY_MMAP), |_| Ok(4096)).unwrap();
        assert_eq!(r.count, 4);
        assert_eq!(r.capabilities, 0x13);
        assert_eq!(
            q.reqbufs(req(4, V4L2_MEMORY_DMABUF), |_| Ok(1)),
            Err(Errno::EINVAL)
        );
        let mut wrong = req(1, V4L2_MEMORY_MMAP);
        wrong.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        assert_eq!(q.reqbufs(wrong, |_| Ok(1)), Err(Errno::EINVAL));
        // The driver lowers the count; a setup error leaves no buffers.
        let r = q
            .reqbufs(req(100, V4L2_MEMORY_MMAP), |c| {
                assert_eq!(*c, MAX_BUFFERS);
                *c = 3;
                Ok(4096)
            })
            .unwrap();
        assert_eq!(r.count, 3);
        let b = q.querybuf(&buf(2, 0)).unwrap();
        assert_eq!((b.m, b.length, b.flags), (2 << 15, 4096, 0x2000));
        assert_eq!(q.querybuf(&buf(3, 0)), Err(Errno::EINVAL));
        assert_eq!(
            q.reqbufs(req(2, V4L2_MEMORY_MMAP), |_| Err(Errno::EINVAL)),
            Err(Errno::EINVAL)
        );
        assert_eq!(q.num_buffers(), 0);
        // Streaming: EBUSY.
        q.reqbufs(req(2, V4L2_MEMORY_MMAP), |_| Ok(4096)).unwrap();
        assert!(q.streamon(V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap());
        q.start();
        assert_eq!(
            q.reqbufs(req(0, V4L2_MEMORY_MMAP), |_| Ok(1)),
            Err(Errno::EBUSY)
        );
    }

    #[test]
    fn streaming_cycle_and_dqbuf_errors() {
        let mut q = Queue::new(V4L2_BUF_TYPE_VIDEO_CAPTURE);
        q.reqbufs(req(2, V4L2_MEMORY_MMAP), |_| Ok(1000)).unwrap();
        let d = q.dqbuf(&buf(0, V4L2_MEMORY_MMAP), false);
        assert_eq!(
            (d.result, d.would_block),
            (Err(Errno::EINVAL), false),
            "not streaming"
        );
        let (b, owned) = q.qbuf(&buf(0, V4L2_MEMORY_MMAP), None, OK).unwrap();
        assert!(!owned);
        assert_eq!(b.flags & V4L2_BUF_FLAG_QUEUED, V4L2_BUF_FLAG_QUEUED);
        assert_eq!(b.bytesused, 1000);
        assert_eq!(
            q.qbuf(&buf(0, V4L2_MEMORY_MMAP), None, OK).unwrap_err(),
            Errno::EINVAL,
            "already queued"
        );
        assert_eq!(
            q.qbuf(&buf(1, V4L2_MEMORY_USERPTR), None, OK).unwrap_err(),
            Errno::EINVAL,
            "wrong memory"
        );
        assert_eq!(q.poll(), libc::POLLERR as u32);
        assert!(q.streamon(V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap());
        q.start();
        assert!(!q.streamon(V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap());
        assert_eq!(q.poll(), 0);
        let d = q.dqbuf(&buf(0, V4L2_MEMORY_MMAP), true);
        assert_eq!((d.result, d.would_block), (Err(Errno::EAGAIN), false));
        assert!(q.dqbuf(&buf(0, V4L2_MEMORY_MMAP), false).would_block);
        let a = q.next_active().unwrap();
        assert_eq!(a.index, 0);
        assert!(q.buffer_done(&a, false, 1_500_000_000, 7, V4L2_FIELD_NONE));
        assert!(!q.buffer_done(&a, false, 0, 0, 0), "completed once");
        assert_eq!(q.poll(), (libc::POLLIN | libc::POLLRDNORM) as u32);
        let b = q.dqbuf(&buf(0, V4L2_MEMORY_MMAP), false).result.unwrap();
        assert_eq!((b.index, b.sequence, b.timestamp.tv_sec), (0, 7, 1));
        assert_eq!(b.timestamp.tv_usec, 500_000);
        assert_eq!(b.flags & (V4L2_BUF_FLAG_DONE | V4L2_BUF_FLAG_QUEUED), 0);
        // Cancelled completions are dropped.
        q.qbuf(&buf(1, V4L2_MEMORY_MMAP), None, OK).unwrap();
        let a = q.next_active().unwrap();
        q.streamoff(V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap();
        assert!(!q.buffer_done(&a, true, 0, 0, 0));
        assert_eq!(
            q.querybuf(&buf(1, 0)).unwrap().flags & V4L2_BUF_FLAG_QUEUED,
            0
        );
        assert_eq!(q.streamoff(V4L2_BUF_TYPE_VIDEO_OUTPUT), Err(Errno::EINVAL));
    }

    #[test]
    fn userptr_checks_length_and_mapping() {
        let mut q = Queue::new(V4L2_BUF_TYPE_VIDEO_CAPTURE);
        q.reqbufs(req(1, V4L2_MEMORY_USERPTR), |_| Ok(256)).unwrap();
        let mem = Arc::new(Mem::default());
        mem.0.lock().insert(0x1000, vec![0; 256]);
        let m: Arc<dyn UserMemory> = mem;
        let mut b = buf(0, V4L2_MEMORY_USERPTR);
        b.m = 0x1000;
        b.length = 255;
        assert_eq!(
            q.qbuf(&b, Some(m.clone()), OK).unwrap_err(),
            Errno::EINVAL,
            "shorter than the setup size"
        );
        b.length = 512;
        assert_eq!(
            q.qbuf(&b, Some(m.clone()), OK).unwrap_err(),
            Errno::EFAULT,
            "not all mapped"
        );
        b.m = u64::MAX - 16;
        b.length = 256;
        assert_eq!(
            q.qbuf(&b, Some(m.clone()), OK).unwrap_err(),
            Errno::EFAULT,
            "past the end of the address space"
        );
        b.m = 0x1000;
        let (out, _) = q.qbuf(&b, Some(m), OK).unwrap();
        assert_eq!((out.m, out.length), (0x1000, 256));
    }

    #[test]
    fn userptr_capture_buffers_must_be_writable() {
        struct ReadOnly;
        impl UserMemory for ReadOnly {
            fn read(&self, _: u64, len: usize) -> Result<Vec<u8>, Errno> {
                Ok(vec![0; len])
            }
            fn write(&self, _: u64, _: &[u8]) -> Result<(), Errno> {
                Err(Errno::EFAULT)
            }
        }
        let mut q = Queue::new(V4L2_BUF_TYPE_VIDEO_CAPTURE);
        q.reqbufs(req(1, V4L2_MEMORY_USERPTR), |_| Ok(256)).unwrap();
        let mut b = buf(0, V4L2_MEMORY_USERPTR);
        (b.m, b.length) = (0x1000, 256);
        assert_eq!(
            q.qbuf(&b, Some(Arc::new(ReadOnly)), OK).unwrap_err(),
            Errno::EFAULT
        );
        // An output buffer is only read.
        let mut q = Queue::new(V4L2_BUF_TYPE_VIDEO_OUTPUT);
        let mut r = req(1, V4L2_MEMORY_USERPTR);
        r.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        q.reqbufs(r, |_| Ok(256)).unwrap();
        b.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        assert!(q.qbuf(&b, Some(Arc::new(ReadOnly)), OK).is_ok());
    }

    #[test]
    fn create_bufs_appends() {
        let mut q = Queue::new(V4L2_BUF_TYPE_VIDEO_CAPTURE);
        let mut c = v4l2_create_buffers::zeroed();
        c.memory = V4L2_MEMORY_MMAP;
        c.format.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        let r = q.create_bufs(c, |_| Ok(1)).unwrap();
        assert_eq!((r.index, r.count), (0, 0));
        c.count = 2;
        assert_eq!(q.create_bufs(c, |_| Ok(100)).unwrap().index, 0);
        let r = q.create_bufs(c, |_| Ok(200)).unwrap();
        assert_eq!((r.index, r.count, r.reserved[0]), (2, 2, MAX_BUFFERS));
        assert_ne!(r.capabilities & V4L2_BUF_CAP_SUPPORTS_MAX_NUM_BUFFERS, 0);
        // Before Linux 6.8 the field is reserved, and zero.
        let mut old = Queue::new(V4L2_BUF_TYPE_VIDEO_CAPTURE).for_kernel(0x060100);
        let r = old.create_bufs(c, |_| Ok(200)).unwrap();
        assert_eq!((r.count, r.reserved), (2, [0; 6]));
        assert_eq!(r.capabilities & V4L2_BUF_CAP_SUPPORTS_MAX_NUM_BUFFERS, 0);
        assert_eq!(q.querybuf(&buf(3, 0)).unwrap().length, 200);
        c.memory = V4L2_MEMORY_USERPTR;
        assert_eq!(q.create_bufs(c, |_| Ok(1)), Err(Errno::EINVAL));
    }

    /// Random operation sequences (hostile indexes, types, memory, lengths) never panic, and the
    /// queue's bookkeeping stays consistent: every buffer the driver owns or that is done is
    /// one buffer in that state, listed once.
    #[test]
    fn random_operations_keep_the_queue_consistent() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mem = Arc::new(Mem::default());
        mem.0.lock().insert(0x1000, vec![0; 1 << 16]);
        let m: Arc<dyn UserMemory> = mem;
        let mut q = Queue::new(V4L2_BUF_TYPE_VIDEO_CAPTURE);
        let mut active: Vec<ActiveBuffer> = Vec::new();
        for _ in 0..20_000 {
            let r = next();
            let memory = [V4L2_MEMORY_MMAP, V4L2_MEMORY_USERPTR, 3, 0][(r >> 8) as usize % 4];
            let index = (r >> 16) as u32 % 6;
            let mut b = buf(index, memory);
            b.m = 0x1000 + ((r >> 24) % 3) * 4096;
            b.length = [0, 100, 4096, 70_000][(r >> 32) as usize % 4];
            b.flags = (r >> 40) as u32;
            if r % 97 == 0 {
                b.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
            }
            match r % 11 {
                0 => {
                    let _ = q.reqbufs(req((r >> 4) as u32 % 5, memory), |c| {
                        *c = (*c).min(4);
                        Ok(1000)
                    });
                }
                1 | 2 => {
                    let _ = q.qbuf(&b, Some(m.clone()), OK);
                }
                3 => {
                    let _ = q.prepare_buf(&b, Some(m.clone()), OK);
                }
                4 | 5 => {
                    let _ = q.dqbuf(&b, r & 1 == 0);
                }
                6 => {
                    if q.streamon(V4L2_BUF_TYPE_VIDEO_CAPTURE).unwrap_or(false) {
                        q.start();
                    }
                }
                7 => {
                    let _ = q.streamoff(V4L2_BUF_TYPE_VIDEO_CAPTURE);
                }
                8 => {
                    if let Some(a) = q.next_active() {
                        active.push(a);
                    }
                }
                9 => {
                    if let Some(a) = active.pop() {
                        q.buffer_done(&a, r & 2 == 0, r, r as u32, V4L2_FIELD_NONE);
                    }
                }
                _ => {
                    let _ = q.querybuf(&b);
                    let _ = q.mmap_buffer((r >> 4) % 200_000, 1000, true, true, false);
                }
            }
            let n = q.bufs.len();
            for (list, want) in [
                (&q.active, &[BufState::Active][..]),
                (&q.done, &[BufState::Done, BufState::Error][..]),
            ] {
                let mut seen = std::collections::HashSet::new();
                for &i in list.iter() {
                    assert!((i as usize) < n, "listed buffer {i} of {n}");
                    assert!(seen.insert(i), "buffer {i} listed twice");
                    assert!(want.contains(&q.bufs[i as usize].state));
                }
            }
            let listed = q.active.len() + q.done.len();
            let in_states = q
                .bufs
                .iter()
                .filter(|b| matches!(b.state, BufState::Active | BufState::Done | BufState::Error))
                .count();
            assert_eq!(listed, in_states, "every owned or done buffer is listed");
            if !q.streaming {
                assert!(q.active.is_empty() && q.done.is_empty());
            }
        }
    }
}
