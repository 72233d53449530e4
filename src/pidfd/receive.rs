//! pidfds handed over a unix socket, as container runtimes send them.
//!
//! `runc run|create|exec --pidfd-socket PATH` (runc 1.2+) and crun's
//! `run.oci.pidfd_receiver=PATH` annotation both connect to a `SOCK_STREAM`
//! unix socket listening at `PATH` and send one message on the connection:
//! one file descriptor in an `SCM_RIGHTS` control message — a pidfd for the
//! container's process, opened by that process itself (runc) or by the
//! runtime (crun) — with a few bytes of payload (runc: `standard` for the
//! container's init, `setns` for an `exec`'d process; crun: a space). Then
//! they close the connection. runc connects before it starts the container
//! and its init sends later, once set up, so a connection can be open for a
//! while before its message arrives: [`PidfdListener`] hands back
//! non-blocking connections, to be read when they become readable.
//!
//! Anything else is refused with an error that names the socket: a message
//! without an fd, with more than one, or with an fd that is not a pidfd.
//! Every fd that arrived is closed before the error is returned (they are
//! received close-on-exec, `MSG_CMSG_CLOEXEC`, so none can leak into a
//! process started meanwhile either).

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use arrayvec::ArrayVec;
use rustix::io::Errno;
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};

use super::check::{is_pidfd, link_name, pid_of};
use crate::{Error, Result, Subject};

/// The longest payload kept; runc's own receiver allows 4096 bytes.
const MAX_PAYLOAD: usize = 4096;

/// How many fds one message may carry before the kernel truncates it: room
/// to count (and close) a few more than the one expected.
const MAX_FDS: usize = 8;

/// A pidfd received over a socket, with the payload that came with it.
#[derive(Debug)]
pub struct ReceivedPidfd {
    /// The pidfd (checked to be one; close-on-exec).
    pub pidfd: OwnedFd,
    /// The pid it names, in our pid namespace, when it arrived; `None` if
    /// the process had already been reaped, or lives in a pid namespace
    /// that ours does not contain.
    pub pid: Option<i32>,
    /// The bytes sent with it: runc sends `standard` (a container's init) or
    /// `setns` (a process started with `runc exec`); crun sends a space.
    pub payload: Vec<u8>,
}

/// Receives one pidfd from a connected unix stream socket `conn`; `socket`
/// names it in errors (the listening path).
///
/// Returns `Ok(None)` when `conn` is non-blocking and nothing has arrived
/// yet. A message without an fd, with several, or with one that is not a
/// pidfd is an error (every fd received is closed first); so is a
/// connection closed before sending anything.
pub fn receive_pidfd(conn: BorrowedFd<'_>, socket: &Path) -> Result<Option<ReceivedPidfd>> {
    let mut payload = [0u8; MAX_PAYLOAD];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match recvmsg(
            conn,
            &mut [IoSliceMut::new(&mut payload)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(None),
            Err(e) => {
                return Err(Error::os(
                    "receive pidfd on",
                    Subject::Path(socket.into()),
                    e,
                ))
            }
        }
    };
    // Take every fd that arrived: each is an `OwnedFd`, closed when dropped
    // on any of the error paths below.
    let mut fds = ArrayVec::<OwnedFd, MAX_FDS>::new();
    let mut count = 0;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            for fd in received {
                count += 1;
                let _ = fds.try_push(fd);
            }
        }
    }
    let refuse = |why: String| Err(refused(socket, why));
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return refuse(format!(
            "a message with more than {MAX_FDS} file descriptors (closed them; expected one pidfd)"
        ));
    }
    match count {
        0 if msg.bytes == 0 => {
            return refuse("the sender closed the connection without sending a pidfd".into())
        }
        0 => {
            return refuse(format!(
                "a message of {} bytes without a file descriptor (expected one pidfd)",
                msg.bytes
            ))
        }
        1 => {}
        n => {
            return refuse(format!(
                "a message with {n} file descriptors (closed them all; expected one pidfd)"
            ))
        }
    }
    let pidfd = fds.pop().expect("one fd was counted");
    if !is_pidfd(pidfd.as_fd()) {
        let what = link_name(pidfd.as_fd()).unwrap_or_else(|| "unknown".into());
        return refuse(format!(
            "a file descriptor that is not a pidfd ({what}; closed it)"
        ));
    }
    let pid = pid_of(pidfd.as_fd())?;
    Ok(Some(ReceivedPidfd {
        pid,
        pidfd,
        payload: payload[..msg.bytes.min(MAX_PAYLOAD)].to_vec(),
    }))
}

fn refused(socket: &Path, why: String) -> Error {
    Error::new(
        "receive pidfd on",
        Subject::Path(socket.into()),
        std::io::Error::new(std::io::ErrorKind::InvalidData, why),
    )
}

/// A unix socket that runtimes send pidfds to (`runc --pidfd-socket`,
/// crun's `run.oci.pidfd_receiver`). Non-blocking, close-on-exec.
///
/// ```no_run
/// use ctrmon::pidfd::PidfdListener;
///
/// let listener = PidfdListener::bind("/run/my-shim/pidfd.sock")?;
/// // ... start `runc run --pidfd-socket /run/my-shim/pidfd.sock ...`; then,
/// // when the listener is readable:
/// if let Some(conn) = listener.accept()? {
///     // ... and when `conn` is readable:
///     if let Some(received) = conn.receive()? {
///         println!("pidfd from {:?}", String::from_utf8_lossy(&received.payload));
///     }
/// }
/// # Ok::<(), ctrmon::Error>(())
/// ```
#[derive(Debug)]
pub struct PidfdListener {
    listener: UnixListener,
    path: PathBuf,
}

impl PidfdListener {
    /// Listens at `path` (which must not exist yet). The socket file stays
    /// until the caller removes it.
    pub fn bind(path: impl AsRef<Path>) -> Result<PidfdListener> {
        let path = path.as_ref().to_path_buf();
        let fail = |e| Error::new("listen for pidfds at", Subject::Path(path.clone()), e);
        // std makes its sockets close-on-exec.
        let listener = UnixListener::bind(&path).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        Ok(PidfdListener { listener, path })
    }

    /// The path it listens at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection (`None`: none pending). The connection is
    /// non-blocking; read it with [`PidfdConnection::receive`] when it is
    /// readable.
    pub fn accept(&self) -> Result<Option<PidfdConnection>> {
        match self.listener.accept() {
            Ok((stream, _)) => {
                stream
                    .set_nonblocking(true)
                    .map_err(|e| Error::new("accept on", Subject::Path(self.path.clone()), e))?;
                Ok(Some(PidfdConnection {
                    stream,
                    socket: self.path.clone(),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(Error::new("accept on", Subject::Path(self.path.clone()), e)),
        }
    }
}

impl AsFd for PidfdListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

/// One runtime's connection to a [`PidfdListener`]. Non-blocking,
/// close-on-exec.
#[derive(Debug)]
pub struct PidfdConnection {
    stream: UnixStream,
    socket: PathBuf,
}

impl PidfdConnection {
    /// Receives the pidfd, if it has arrived (see [`receive_pidfd`]). After
    /// `Some` or an error the connection has served its purpose: drop it.
    pub fn receive(&self) -> Result<Option<ReceivedPidfd>> {
        receive_pidfd(self.stream.as_fd(), &self.socket)
    }
}

impl AsFd for PidfdConnection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}
