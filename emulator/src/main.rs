//! mcemu: media devices (`/dev/mediaN`, `/dev/videoN`, `/dev/v4l-subdevN`) answered in
//! userspace through CUSE, for testing V4L2/MC software and hot-unplug without hardware.

mod control;
mod dispatch;
mod nodes;
mod serve;

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
    /// Print the daemon's nodes as JSON. With --wait, wait until every node is registered
    /// (exit 0) or the time runs out (exit 1; 2 if the daemon never answered).
    Status {
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
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
            control,
            major,
            threads,
        } => {
            let cfg = serve::ServeConfig {
                board,
                control,
                major,
                threads: threads.into(),
                dev_root: PathBuf::from("/dev"),
            };
            match serve::run(cfg) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("mcemu: {}", error_chain(&e));
                    1
                }
            }
        }
        Command::Ctl {
            control,
            command: CtlCommand::Status { wait },
        } => control::status_command(&control, wait),
    };
    std::process::exit(code);
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
