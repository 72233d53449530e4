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
use rustix::fs::{fchmod, lstat, unlink, FileType, Mode};
use rustix::io::Errno;
use rustix::net::{
    bind, connect, listen, recvmsg, socket_with, AddressFamily, RecvAncillaryBuffer,
    RecvAncillaryMessage, RecvFlags, ReturnFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use super::check::{is_pidfd, link_name, not_a_process, pid_of};
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
        // The kernel truncates the fds when there is no room for them in
        // `control`, and also when this process has no fd left to install
        // one in (EMFILE): the sender's fd is then lost either way.
        return refuse(format!(
            "a message whose file descriptors did not all arrive (more than {MAX_FDS}, or \
             this process was out of file descriptors; closed those that did; expected one pidfd)"
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
    if let Some(why) = not_a_process(pidfd.as_fd())? {
        return refuse(format!("{why} (closed it)"));
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

/// How many connections the kernel queues before `accept`: beyond it a
/// blocking `connect` waits and a non-blocking one fails with `EAGAIN`.
const BACKLOG: i32 = 64;

/// A unix socket that runtimes send pidfds to (`runc --pidfd-socket`,
/// crun's `run.oci.pidfd_receiver`). Non-blocking, close-on-exec.
///
/// Who may send: the socket file is created with mode `0600` whatever the
/// umask, and every connection's peer (`SO_PEERCRED`: the connecting
/// process's effective uid and gid when it connected) must be root, this
/// process's effective uid, or a uid or gid allowed with
/// [`allow_uid`](Self::allow_uid) / [`allow_gid`](Self::allow_gid) (a
/// rootless runtime running as another user); anyone else's connection is
/// closed unread, and [`accept`](Self::accept) says who it was. (Only the
/// peer's primary gid is checked, not its supplementary groups.)
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
    own_uid: u32,
    uids: Vec<u32>,
    gids: Vec<u32>,
}

impl PidfdListener {
    /// Listens at `path`, a new socket file of mode `0600`. A socket
    /// already there that nobody listens on (left by a listener that was
    /// killed: `connect` to it is refused) is replaced; one that a listener
    /// is live on, or anything that is not a socket, is an error naming
    /// `path`. The socket file stays until the caller removes it.
    ///
    /// Checking for a live listener connects to it, so that listener sees
    /// one connection that sends nothing.
    pub fn bind(path: impl AsRef<Path>) -> Result<PidfdListener> {
        let path = path.as_ref().to_path_buf();
        let sock = bind_0600(&path)?;
        listen(&sock, BACKLOG)
            .map_err(|e| Error::os("listen for pidfds at", Subject::Path(path.clone()), e))?;
        Ok(PidfdListener {
            listener: UnixListener::from(sock),
            path,
            own_uid: rustix::process::geteuid().as_raw(),
            uids: Vec::new(),
            gids: Vec::new(),
        })
    }

    /// Also accepts connections from processes whose effective uid is
    /// `uid`. (The socket file is `0600`: such a user also needs to be able
    /// to open it, e.g. by the file's owner or mode being changed.)
    pub fn allow_uid(&mut self, uid: u32) -> &mut Self {
        self.uids.push(uid);
        self
    }

    /// Also accepts connections from processes whose effective gid is
    /// `gid`.
    pub fn allow_gid(&mut self, gid: u32) -> &mut Self {
        self.gids.push(gid);
        self
    }

    /// The path it listens at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection (`None`: none pending). The connection is
    /// non-blocking; read it with [`PidfdConnection::receive`] when it is
    /// readable.
    ///
    /// # Errors
    ///
    /// A connection from a peer that may not send (see [`PidfdListener`])
    /// is closed, and the error (kind `PermissionDenied`) names the socket
    /// and the peer's pid, uid and gid; accepting may go on. Out of file
    /// descriptors, the error is one that
    /// [`is_fd_limit`](crate::Error::is_fd_limit): the connection stays
    /// queued in the kernel until an fd is freed.
    pub fn accept(&self) -> Result<Option<PidfdConnection>> {
        let fail = |e| Error::new("accept on", Subject::Path(self.path.clone()), e);
        let stream = match self.listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        let (pid, uid, gid) = crate::sys::peer_cred(stream.as_fd()).map_err(fail)?;
        let allowed =
            uid == 0 || uid == self.own_uid || self.uids.contains(&uid) || self.gids.contains(&gid);
        if !allowed {
            // Closed unread: nothing it sent is looked at.
            drop(stream);
            let who = match pid {
                0 => "a process outside this pid namespace".to_string(),
                p => format!("pid {p}"),
            };
            let extra = if self.uids.is_empty() && self.gids.is_empty() {
                String::new()
            } else {
                format!(" and uids {:?}, gids {:?}", self.uids, self.gids)
            };
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "refused a connection from {who} (uid {uid}, gid {gid}): only root, uid \
                     {}{extra} may send pidfds here",
                    self.own_uid
                ),
            )));
        }
        stream.set_nonblocking(true).map_err(fail)?;
        Ok(Some(PidfdConnection {
            stream,
            socket: self.path.clone(),
        }))
    }
}

/// A listening-to-be socket bound at `path`, its file of mode `0600`.
///
/// Why `fchmod` before `bind`: Linux creates the socket file with the mode
/// of the socket's own inode, less the umask (`unix_bind` in
/// `net/unix/af_unix.c`: `S_IFSOCK | (SOCK_INODE(sock)->i_mode &
/// ~current_umask())`), and `fchmod` on the unbound socket sets that inode's
/// mode. So the file never exists with more than `0600`: there is no window
/// in which another user can connect, and no process-wide `umask` change
/// that would race with other threads creating files. (The test
/// `the_socket_is_0600_whatever_the_umask` checks this under umask 000. A
/// `chmod` after `bind` would leave such a window, and a `chmod` by path
/// would follow whatever was put at the path meanwhile.) Binding inside a
/// private `0700` directory and renaming the socket into place is race-free
/// too, but `rename` replaces whatever is at the target, including a live
/// listener's socket, which must be refused instead.
fn bind_0600(path: &Path) -> Result<OwnedFd> {
    let subject = || Subject::Path(path.to_path_buf());
    let addr =
        SocketAddrUnix::new(path).map_err(|e| Error::os("listen for pidfds at", subject(), e))?;
    let sock = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| Error::os("create a socket for", subject(), e))?;
    fchmod(&sock, Mode::from_raw_mode(0o600))
        .map_err(|e| Error::os("set the mode of the socket for", subject(), e))?;
    match bind(&sock, &addr) {
        Ok(()) => return Ok(sock),
        Err(Errno::ADDRINUSE) => {}
        Err(e) => return Err(Error::os("listen for pidfds at", subject(), e)),
    }
    remove_if_stale(path, &addr)?;
    bind(&sock, &addr).map_err(|e| match e {
        // Another listener took the path between the removal and the bind.
        Errno::ADDRINUSE => refused_path(path, "another listener took this path meanwhile"),
        e => Error::os("listen for pidfds at", subject(), e),
    })?;
    Ok(sock)
}

/// Removes the socket file at `path` if nobody listens on it (a connect is
/// refused: a listener that was killed left it); an error naming `path`
/// if someone does, or if it is not a socket at all.
fn remove_if_stale(path: &Path, addr: &SocketAddrUnix) -> Result<()> {
    let subject = || Subject::Path(path.to_path_buf());
    let before = lstat(path).map_err(|e| Error::os("check the existing socket", subject(), e))?;
    if FileType::from_raw_mode(before.st_mode) != FileType::Socket {
        return Err(refused_path(
            path,
            "it exists and is not a socket; not replacing it",
        ));
    }
    let probe = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| Error::os("create a socket to probe", subject(), e))?;
    match connect(&probe, addr) {
        Err(Errno::CONNREFUSED) => {}
        // Connected, or queued (EAGAIN: its backlog is full, but it is
        // there): a live listener.
        Ok(()) | Err(Errno::AGAIN | Errno::INPROGRESS) => {
            return Err(refused_path(
                path,
                "another listener is live on this socket (a connection to it was accepted); \
                 not replacing it",
            ))
        }
        Err(e) => return Err(Error::os("probe the existing socket", subject(), e)),
    }
    drop(probe);
    // Only the file that was probed: if it was replaced meanwhile, the new
    // one is someone else's.
    let now = lstat(path).map_err(|e| Error::os("check the existing socket", subject(), e))?;
    if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) {
        return Err(refused_path(
            path,
            "the socket was replaced while it was checked",
        ));
    }
    match unlink(path) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::os("remove the stale socket", subject(), e)),
    }
}

fn refused_path(path: &Path, why: &str) -> Error {
    Error::new(
        "listen for pidfds at",
        Subject::Path(path.into()),
        std::io::Error::new(std::io::ErrorKind::AddrInUse, why.to_string()),
    )
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
