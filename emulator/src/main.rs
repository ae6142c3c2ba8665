//! mcemu: media devices (`/dev/mediaN`, `/dev/videoN`, `/dev/v4l-subdevN`) answered in
//! userspace through CUSE, for testing V4L2/MC software and hot-unplug without hardware.

use mcemu::{control, error_chain, instance, limits, serve};

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mcemu",
    version,
    about = "Media Controller / V4L2 device emulator over CUSE"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the daemon: create the device nodes and serve them until SIGINT/SIGTERM.
    Serve {
        /// Board profile: beagleboard-xm (MT9P031, ISP rev 0xf0) or n900 (ET8EK8, rev 0x20).
        #[arg(long, default_value = "beagleboard-xm", value_parser = parse_board)]
        board: omap3isp::Board,
        /// Serve a declarative topology instead of an omap3isp board: a preset (uvc-like,
        /// vimc-like, usb-av-like) or a TOML file (README "Topologies"). Repeat it for several
        /// devices in one daemon; --instances plugs that many of each.
        #[arg(long, value_name = "NAME|FILE", conflicts_with = "board")]
        topology: Vec<String>,
        /// Control socket path.
        #[arg(long, default_value = control::DEFAULT_SOCKET)]
        control: PathBuf,
        /// Character major for all nodes (default: a free local/experimental major from
        /// /proc/devices; 0: a dynamic major per node).
        #[arg(long)]
        major: Option<u32>,
        /// Reader threads per node.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
        /// Lifetime model: refcount (the RFC model: open handles and registered nodes pin the
        /// media device; it is released at the last put), devm (the driver context with every
        /// node is freed at unbind) or registered-bit (the 2016 fix: a registered check at entry,
        /// memory freed at unbind). In the legacy models accesses to freed objects are detected
        /// and recorded as use-after-free events.
        #[arg(long, value_enum, default_value = "refcount")]
        lifetime: instance::Lifetime,
        /// What handles left open see after unplug: mainline (Linux today), enodev (the 2024
        /// proposal: ENODEV from the media node too) or strict (ENODEV everywhere; unplug waits
        /// for calls in flight).
        #[arg(long, value_enum, default_value = "mainline")]
        errno_profile: instance::ErrnoProfile,
        /// Mount a FUSE filesystem here with sysfs-like bind/unbind files:
        /// PATH/bus/platform/drivers/omap3isp/{bind,unbind} accept "480bc000.isp".
        #[arg(long, value_name = "PATH")]
        bus_root: Option<PathBuf>,
        /// Plug in this many instances of the board (of each --topology) at start, each with its
        /// own media device and nodes; unplugged and replugged one at a time with
        /// `ctl unplug/replug --instance`.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        instances: u32,
        /// Owner of the device nodes (user name or uid).
        #[arg(long, default_value = "root", value_name = "USER")]
        node_owner: String,
        /// Group of the device nodes (group name or gid); default video, or root where
        /// there is no video group.
        #[arg(long, value_name = "GROUP")]
        node_group: Option<String>,
        /// Permission bits of the device nodes, in octal.
        #[arg(long, default_value = "0660", value_name = "MODE")]
        node_mode: String,
        /// Handles one process may have open on the daemon's nodes (more: EMFILE).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
        max_handles: u32,
        /// MMAP buffer memory one process may hold, in MiB (REQBUFS gets fewer buffers past it,
        /// none: ENOMEM).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
        max_buffer_mib: u64,
        /// Calls one process may have waiting in blocking DQBUF/DQEVENT (more: EBUSY).
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
        max_parked: u32,
    },
    /// Talk to a running daemon.
    Ctl {
        /// Control socket path.
        #[arg(long, global = true, default_value = control::DEFAULT_SOCKET)]
        control: PathBuf,
        #[command(subcommand)]
        command: CtlCommand,
    },
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Print the daemon's instances and nodes as JSON. With --wait, wait until every node of the
    /// newest instance is registered (exit 0) or the time runs out (exit 1; 2 if the daemon never
    /// answered).
    Status {
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
    },
    /// Unplug an instance (default: the newest registered one): its nodes leave /dev at once,
    /// handles still open get the errno profile's answers, memory goes after the last close.
    Unplug {
        #[arg(long)]
        instance: Option<u32>,
    },
    /// Plug in a fresh instance in place of an unplugged one (default: the newest).
    Replug {
        #[arg(long)]
        instance: Option<u32>,
    },
    /// Unbind one driver of a shared media device (a topology whose entities name several
    /// drivers, e.g. usb-av-like): its entities and nodes go; the media device stays while
    /// another driver is bound and goes with the last (the Media Device Allocator's rule).
    Unbind {
        #[arg(long)]
        driver: String,
        #[arg(long)]
        instance: Option<u32>,
    },
    /// Bind a driver of a shared media device again: into the media device if another driver
    /// keeps it, else a fresh media device (a new instance).
    Bind {
        #[arg(long)]
        driver: String,
        #[arg(long)]
        instance: Option<u32>,
    },
    /// Live objects per kind and instance, what pins them, and the release log. With --summary,
    /// one line: instances= registered= unplugged= released= open_handles= live_objects= uaf_events=
    Audit {
        #[arg(long)]
        summary: bool,
    },
    /// Arm a one-shot race breakpoint: the next NAME ioctl on the node parks at the stage until
    /// `ctl continue`. Prints the breakpoint id.
    Break {
        /// The node's path, e.g. /dev/media0.
        #[arg(long)]
        node: String,
        /// The ioctl's uapi name, e.g. MEDIA_IOC_DEVICE_INFO or VIDIOC_QUERYCAP.
        #[arg(long)]
        ioctl: String,
        /// entry (after the registered check), mid (holding the device's objects) or reply.
        #[arg(long, default_value = "entry")]
        stage: String,
    },
    /// Wait until a call is parked at a breakpoint; prints it (id, node, ioctl, stage, pid).
    WaitHit {
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// Let a parked call go on (by breakpoint id; all of them without one).
    Continue { id: Option<u32> },
    /// Inject a fault into the next COUNT calls of an ioctl on a node: answer with an errno
    /// and/or delay them (prints the fault id). Or, on a video node, into its pipeline: lose
    /// the next frames, or stop frames for a while (a stuck pipeline).
    Inject {
        #[arg(long)]
        node: String,
        #[arg(long, required_unless_present_any = ["drop_frames", "stall_ms"], default_value = "")]
        ioctl: String,
        /// Errno name to answer with, e.g. EIO or EBUSY.
        #[arg(long)]
        errno: Option<String>,
        /// Delay before the call proceeds (or fails), in milliseconds.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Frames the pipeline of this video node loses next (sequence numbers skip them).
        #[arg(long, default_value_t = 0)]
        drop_frames: u32,
        /// Milliseconds the pipeline of this video node produces nothing (no frame starts).
        #[arg(long, default_value_t = 0)]
        stall_ms: u64,
    },
}

fn parse_board(s: &str) -> Result<omap3isp::Board, String> {
    omap3isp::Board::from_name(s).ok_or_else(|| {
        let names: Vec<_> = omap3isp::Board::ALL.iter().map(|b| b.name()).collect();
        format!("unknown board {s:?} (known: {})", names.join(", "))
    })
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = match cli.command {
        Command::Serve {
            board,
            topology,
            control,
            major,
            threads,
            lifetime,
            errno_profile,
            bus_root,
            instances,
            node_owner,
            node_group,
            node_mode,
            max_handles,
            max_buffer_mib,
            max_parked,
        } => 'serve: {
            let node_access =
                match serve::NodeAccess::resolve(&node_owner, node_group.as_deref(), &node_mode) {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("mcemu: {e}");
                        break 'serve 2;
                    }
                };
            let mut models = Vec::new();
            for t in &topology {
                match mcemu::model::Model::topology(t) {
                    Ok(m) => models.push(m),
                    Err(e) => {
                        eprintln!("mcemu: --topology: {e}");
                        break 'serve 2;
                    }
                }
            }
            if models.is_empty() {
                models.push(mcemu::model::Model::Board(board));
            }
            let cfg = serve::ServeConfig {
                models,
                control,
                major,
                threads: threads.into(),
                dev_root: PathBuf::from("/dev"),
                errno_profile,
                lifetime,
                bus_root,
                instances,
                node_access,
                caps: limits::Caps {
                    handles: max_handles,
                    buffer_bytes: max_buffer_mib << 20,
                    parked: max_parked,
                },
            };
            match serve::run(cfg) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("mcemu: {}", error_chain(&e));
                    1
                }
            }
        }
        Command::Ctl { control, command } => match command {
            CtlCommand::Status { wait } => control::status_command(&control, wait),
            CtlCommand::Unplug { instance } => {
                control::simple_command(&control, &control::Request::Unplug { instance }, false)
            }
            CtlCommand::Replug { instance } => {
                control::simple_command(&control, &control::Request::Replug { instance }, false)
            }
            CtlCommand::Unbind { driver, instance } => control::simple_command(
                &control,
                &control::Request::Unbind { driver, instance },
                false,
            ),
            CtlCommand::Bind { driver, instance } => control::simple_command(
                &control,
                &control::Request::Bind { driver, instance },
                false,
            ),
            CtlCommand::Audit { summary } => {
                control::simple_command(&control, &control::Request::Audit, summary)
            }
            CtlCommand::Break { node, ioctl, stage } => control::simple_command(
                &control,
                &control::Request::Break { node, ioctl, stage },
                false,
            ),
            CtlCommand::WaitHit { timeout } => {
                control::simple_command(&control, &control::Request::WaitHit { timeout }, false)
            }
            CtlCommand::Continue { id } => {
                control::simple_command(&control, &control::Request::Continue { id }, false)
            }
            CtlCommand::Inject {
                node,
                ioctl,
                errno,
                delay_ms,
                count,
                drop_frames,
                stall_ms,
            } => control::simple_command(
                &control,
                &control::Request::Inject(control::FaultSpec {
                    node,
                    ioctl,
                    errno,
                    delay_ms,
                    count,
                    drop_frames,
                    stall_ms,
                }),
                false,
            ),
        },
    };
    std::process::exit(code);
}
