//! A tiny TCP and UDP probe for the network-namespace harness's own test, so it
//! needs no tool beyond iproute2 and nftables.
//!
//! `mutual-netprobe listen IP:PORT` prints `LISTENING`, then answers each
//! connection with the address it came from (one line) and prints that
//! address too. `mutual-netprobe connect IP:PORT` prints the line the
//! listener answered: how the far side saw this host.
//! `mutual-netprobe udp-echo IP:PORT` answers each UDP datagram with its
//! source address. `mutual-netprobe udp-ask LOCAL_PORT IP:PORT…` sends one
//! datagram from one local port to each echo in turn and prints each answer
//! on its line: whether a NAT kept one mapping for every destination.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1..) {
        Some([mode, addr]) if mode == "listen" => {
            let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
            println!("LISTENING");
            std::io::stdout().flush()?;
            for stream in listener.incoming() {
                let mut stream = stream?;
                let peer = stream.peer_addr()?;
                writeln!(stream, "{peer}")?;
                println!("{peer}");
                std::io::stdout().flush()?;
            }
            Ok(())
        }
        Some([mode, addr]) if mode == "connect" => {
            let stream = TcpStream::connect(addr).with_context(|| format!("connecting {addr}"))?;
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line)?;
            print!("{line}");
            Ok(())
        }
        Some([mode, addr]) if mode == "udp-echo" => {
            let socket = UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))?;
            println!("LISTENING");
            std::io::stdout().flush()?;
            let mut buf = [0u8; 64];
            loop {
                let (_, from) = socket.recv_from(&mut buf)?;
                socket.send_to(from.to_string().as_bytes(), from)?;
            }
        }
        Some([mode, port, echoes @ ..]) if mode == "udp-ask" => {
            let socket = UdpSocket::bind(format!("0.0.0.0:{port}"))?;
            socket.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = [0u8; 64];
            for echo in echoes {
                socket.send_to(b"?", echo)?;
                let (n, _) = socket
                    .recv_from(&mut buf)
                    .with_context(|| format!("no answer from {echo}"))?;
                println!(
                    "{}",
                    String::from_utf8_lossy(buf.get(..n).unwrap_or_default())
                );
            }
            Ok(())
        }
        _ => anyhow::bail!(
            "usage: mutual-netprobe listen|connect|udp-echo IP:PORT, or udp-ask LOCAL_PORT IP:PORT…"
        ),
    }
}
