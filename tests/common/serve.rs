//! A running `autorma serve` for the binary's tests.

use std::process::{Child, Command};

use super::http::Http;

/// A free loopback port (bound and let go: the server binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `autorma serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub http: Http,
}

impl std::ops::Deref for Server {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

impl Server {
    /// Starts `command` (a `serve` listening on 127.0.0.1:`port`) and waits until its
    /// `/readyz` answers with `token`.
    pub fn spawn(mut command: Command, port: u16, token: Option<&str>) -> Server {
        let server = Server { child: command.spawn().unwrap(), http: Http { port } };
        server.wait_ready(token);
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
