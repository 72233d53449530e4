//! pidfds received over a unix socket, from sender processes that speak the
//! protocol of `runc --pidfd-socket` (connect to a `SOCK_STREAM` socket,
//! send the payload `standard` with the process's own pidfd in one
//! `SCM_RIGHTS` message, close) and crun's `run.oci.pidfd_receiver` (a
//! space as payload, a pidfd the runtime opened), and from senders that
//! break it.
//!
//! Debian's runc (1.1.x) predates `--pidfd-socket` (runc 1.2), so the
//! sender is this binary, re-run as a helper process.

mod common;

use ctrmon::watch::Process;
use std::io::{BufRead, BufReader, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::{helper, helper_role, open_fds, run_scenarios, Kid, TmpDir};
use ctrmon::pidfd::{is_pidfd, PidfdListener, ReceivedPidfd};
use ctrmon::{EventKind, ExitStatus, Monitor};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::process::{getpid, pidfd_open, waitid, PidfdFlags, WaitId, WaitIdOptions};

fn main() -> ExitCode {
    if let Some(role) = helper_role() {
        sender(&role);
    }
    run_scenarios(&[
        ("runc_protocol_pidfd_names_the_sender", runc_protocol),
        ("crun_protocol_pidfd_is_received", crun_protocol),
        (
            "a_sender_that_connects_early_is_read_when_it_sends",
            late_sender,
        ),
        ("a_message_without_an_fd_is_refused", no_fd),
        ("two_fds_are_refused_and_both_closed", two_fds),
        (
            "an_fd_that_is_not_a_pidfd_is_refused_and_closed",
            not_a_pidfd,
        ),
        ("a_sender_that_sends_nothing_is_refused", silent),
        ("a_received_pidfd_is_watched_to_its_exit", watched),
        ("watch_pidfd_refuses_what_is_not_a_pidfd", watch_not_a_pidfd),
        ("watch_pidfd_of_a_process_already_reaped", watch_reaped),
        ("ctrmon_watch_pidfd_socket", cli_watch),
        ("the_socket_is_0600_whatever_the_umask", mode_0600),
        (
            "fchmod_before_bind_sets_the_socket_files_mode",
            fchmod_before_bind,
        ),
        (
            "a_stale_socket_is_replaced_and_a_live_one_refused",
            stale_and_live,
        ),
        (
            "a_peer_of_another_uid_is_refused_unless_allowed",
            peer_credentials,
        ),
        ("watch_pidfd_refuses_a_thread_pidfd", watch_thread_pidfd),
        ("a_thread_pidfd_sent_is_refused_and_closed", thread_sent),
        (
            "ctrmon_watch_socket_is_0600_refuses_others_and_a_live_twin",
            cli_socket_access,
        ),
        (
            "ctrmon_watch_pidfd_line_comes_before_exit_of_a_zombie",
            cli_order,
        ),
        (
            "ctrmon_watch_out_of_fds_does_not_spin_and_serves_real_senders",
            cli_pressure,
        ),
        ("ctrmon_watch_soak_300_senders_beside_80_idle", cli_soak),
    ])
}

/// The sender process: `CTRMON_TEST_HELPER=<mode>`, the socket path as the
/// argument. Connects, sends per `mode`, prints `sent`, then waits for a
/// line on stdin and exits with code 5.
fn sender(mode: &str) -> ! {
    let path = std::env::args().nth(1).expect("socket path");
    let conn = UnixStream::connect(&path).expect("connect");
    let me = pidfd_open(getpid(), PidfdFlags::empty()).expect("pidfd_open self");
    let (pipe_r, _pipe_w) = rustix::pipe::pipe().unwrap();
    let send = |payload: &[u8], fds: &[&OwnedFd]| {
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !borrowed.is_empty() {
            assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
        }
        // EPIPE: the listener refused this sender (its peer check) and
        // closed the connection; not a failure of the sender.
        if let Err(e) = sendmsg(
            &conn,
            &[IoSlice::new(payload)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            assert_eq!(e, rustix::io::Errno::PIPE, "sendmsg");
            std::process::exit(3)
        }
    };
    match mode {
        "runc" => send(b"standard", &[&me]),
        "crun" => send(b" ", &[&me]),
        "late" => {
            std::thread::sleep(Duration::from_millis(200));
            send(b"standard", &[&me])
        }
        "nofd" => send(b"standard", &[]),
        "twofds" => send(b"standard", &[&me, &pipe_r]),
        "notpidfd" => send(b"standard", &[&pipe_r]),
        "silent" => {}
        // Sends and exits at once: the parent reaps it right away, so it is
        // a zombie or gone when ctrmon reads the message.
        "zombie" => {
            let payload = std::env::args().nth(2).unwrap_or_default();
            send(payload.as_bytes(), &[&me]);
            std::process::exit(5)
        }
        // Sends, lives a moment, exits: most are still running when
        // ctrmon reads their message, so their lines carry their pids.
        "brief" => {
            let payload = std::env::args().nth(2).unwrap_or_default();
            send(payload.as_bytes(), &[&me]);
            std::thread::sleep(Duration::from_millis(300));
            std::process::exit(5)
        }
        "thread" => {
            // A thread that lives until the process exits, and a pidfd for
            // it alone (`PIDFD_THREAD`, which is `O_EXCL`).
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                tx.send(thread_id()).unwrap();
                std::thread::sleep(Duration::from_secs(600));
            });
            let tid = rx.recv().unwrap();
            let thread = pidfd_open(
                rustix::process::Pid::from_raw(tid).unwrap(),
                PidfdFlags::from_bits_retain(libc::O_EXCL as u32),
            )
            .expect("pidfd_open(PIDFD_THREAD)");
            send(b"standard", &[&thread])
        }
        other => panic!("unknown sender mode {other}"),
    }
    drop(conn);
    println!("sent");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    std::process::exit(5)
}

/// A listener in a temporary directory and a sender started against it.
struct Exchange {
    listener: PidfdListener,
    sender: Kid,
    _dir: TmpDir,
}

impl Exchange {
    fn start(mode: &str) -> Exchange {
        let dir = TmpDir::new(&format!("pidfd-{mode}"));
        let path = dir.path.join("pidfd.sock");
        let listener = PidfdListener::bind(&path).unwrap();
        let sender = Kid::spawn(
            helper(mode, &[path.display().to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        Exchange {
            listener,
            sender,
            _dir: dir,
        }
    }

    /// Accepts the sender's connection and receives from it, waiting for
    /// readiness as an event loop would.
    fn receive(&self) -> ctrmon::Result<ReceivedPidfd> {
        wait_readable(self.listener.as_fd());
        let conn = self
            .listener
            .accept()
            .unwrap()
            .expect("a pending connection");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            wait_readable(conn.as_fd());
            if let Some(got) = conn.receive()? {
                return Ok(got);
            }
            assert!(Instant::now() < deadline, "no message");
        }
    }

    /// Waits until the sender says it has sent (and closed its end).
    fn wait_sent(&mut self) {
        let mut line = String::new();
        BufReader::new(self.sender.child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "sent\n");
    }

    fn path(&self) -> String {
        self.listener.path().display().to_string()
    }
}

fn wait_readable(fd: std::os::fd::BorrowedFd<'_>) {
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    let limit = Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    assert_eq!(
        poll(&mut fds, Some(&limit)).unwrap(),
        1,
        "not readable in 10 s"
    );
}

/// The received pidfd names the sender: releasing it, we reap it through
/// that pidfd (it is our child) and read its code.
fn assert_names_sender(x: &mut Exchange, got: &ReceivedPidfd) {
    assert!(is_pidfd(got.pidfd.as_fd()));
    assert_eq!(got.pid, Some(x.sender.pid()));
    let flags = rustix::io::fcntl_getfd(&got.pidfd).unwrap();
    assert!(
        flags.contains(rustix::io::FdFlags::CLOEXEC),
        "received close-on-exec"
    );
    drop(x.sender.child.stdin.take());
    let st = waitid(WaitId::PidFd(got.pidfd.as_fd()), WaitIdOptions::EXITED)
        .unwrap()
        .expect("an exit");
    assert_eq!(st.exit_status(), Some(5));
}

fn runc_protocol() {
    let mut x = Exchange::start("runc");
    let got = x.receive().unwrap();
    assert_eq!(got.payload, b"standard");
    assert_names_sender(&mut x, &got);
}

fn crun_protocol() {
    let mut x = Exchange::start("crun");
    let got = x.receive().unwrap();
    assert_eq!(got.payload, b" ");
    assert_names_sender(&mut x, &got);
}

fn late_sender() {
    let mut x = Exchange::start("late");
    wait_readable(x.listener.as_fd());
    let conn = x.listener.accept().unwrap().expect("a pending connection");
    // Connected, nothing sent yet: not an error, not a pidfd.
    assert!(conn.receive().unwrap().is_none());
    wait_readable(conn.as_fd());
    let got = conn.receive().unwrap().expect("the pidfd");
    assert_names_sender(&mut x, &got);
}

/// Runs `mode`'s sender, receives, and checks the error names the socket
/// and says `why`, and that no fd was left open by the refusal.
fn refused(mode: &str, why: &str) {
    let mut x = Exchange::start(mode);
    // Let the sender finish first, so that the fds counted before are all
    // of ours that will be open during the receive.
    x.wait_sent();
    let before = open_fds();
    let err = x.receive().unwrap_err();
    let after = open_fds();
    let text = err.to_string();
    assert!(text.contains(&x.path()), "names the socket: {text}");
    assert!(text.contains(why), "says {why:?}: {text}");
    assert_eq!(err.path_involved(), Some(x.listener.path()));
    // The listener's accepted connection is dropped inside `receive`'s
    // caller by now; anything else still open would be a leak.
    assert_eq!(before, after, "fds before and after the refusal");
}

fn no_fd() {
    refused("nofd", "without a file descriptor");
}

fn two_fds() {
    refused("twofds", "2 file descriptors");
}

fn not_a_pidfd() {
    refused("notpidfd", "not a pidfd (pipe:[");
}

fn silent() {
    refused("silent", "closed the connection without sending a pidfd");
}

fn next_exit(m: &mut Monitor<&'static str>) -> (ctrmon::Exit, &'static str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no exit");
        let mut got = None;
        m.wait_mut(Some(Duration::from_millis(100)), |e, _| {
            if let EventKind::Exited(x) = e.kind {
                got = Some((x, e.receiver.into_owned().unwrap()));
            }
        })
        .unwrap();
        if let Some(g) = got {
            return g;
        }
    }
}

fn watched() {
    let mut x = Exchange::start("runc");
    let got = x.receive().unwrap();
    let mut m = Monitor::new().unwrap();
    m.watch(Process::pidfd(got.pidfd), "init").unwrap();
    drop(x.sender.child.stdin.take());
    let (exit, name) = next_exit(&mut m);
    assert_eq!(name, "init");
    // The sender is our child here: reaped by the monitor, through the
    // pidfd it sent.
    assert_eq!(
        (exit.pid, exit.status, exit.reaped),
        (x.sender.pid(), ExitStatus::Code(5), true)
    );
}

fn watch_not_a_pidfd() {
    let m: Monitor<()> = Monitor::new().unwrap();
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&r);
    let before = open_fds();
    let err = m.watch(Process::pidfd(r), ()).unwrap_err();
    assert!(err.to_string().contains(&format!("fd {raw}")), "{err}");
    assert!(err.to_string().contains("not a pidfd"), "{err}");
    // The fd was closed with the refusal.
    assert_eq!(open_fds().len(), before.len() - 1);
}

fn watch_reaped() {
    let mut m = Monitor::new().unwrap();
    let kid = Kid::sh("exit 9");
    let pidfd = rustix::io::fcntl_dupfd_cloexec(kid.pidfd(), 0).unwrap();
    assert!(kid.reap());
    m.watch(Process::pidfd(pidfd), "gone").unwrap();
    let (exit, _) = next_exit(&mut m);
    assert_eq!((exit.pid, exit.reaped), (0, false));
    if common::kernel_has_exit_info() {
        assert_eq!((exit.status, exit.unknown), (ExitStatus::Code(9), None));
    } else {
        assert_eq!(exit.status, ExitStatus::Unknown);
    }
}

/// `ctrmon watch --pidfd-socket PATH`: a `pidfd` line per process
/// received, then its exit with the status the kernel kept; a bad sender is
/// named on standard error and the listener goes on; SIGTERM ends it and
/// the socket file goes with it.
fn cli_watch() {
    let dir = TmpDir::new("pidfd-cli");
    let path = dir.path.join("pidfd.sock");
    let mut ctrmon = Kid::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_ctrmon"))
            .args(["watch", "--pidfd-socket"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no socket at {}", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
    let spath = path.display().to_string();
    // A sender that breaks the protocol first: refused, named.
    let mut bad = Kid::spawn(
        helper("nofd", std::slice::from_ref(&spath))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    BufReader::new(bad.child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    drop(bad.child.stdin.take());
    // Then a good one.
    let mut good = Kid::spawn(
        helper("runc", std::slice::from_ref(&spath))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut out = BufReader::new(ctrmon.child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.contains("\"event\":\"pidfd\""), "{first}");
    assert!(
        first.contains(&format!("\"pid\":{}", good.pid())),
        "{first}"
    );
    assert!(first.contains("\"payload\":\"standard\""), "{first}");
    // Released, it exits 5; we are its parent and reap it.
    drop(good.child.stdin.take());
    assert_eq!(good.child.wait().unwrap().code(), Some(5));
    let mut exit = String::new();
    out.read_line(&mut exit).unwrap();
    assert!(exit.contains("\"event\":\"exit\""), "{exit}");
    assert!(exit.contains(&format!("\"pid\":{}", good.pid())), "{exit}");
    if common::kernel_has_exit_info() {
        assert!(exit.contains("\"code\":5"), "{exit}");
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(ctrmon.pid()).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert_eq!(ctrmon.child.wait().unwrap().code(), Some(0));
    let mut err = String::new();
    std::io::Read::read_to_string(ctrmon.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains(&spath) && err.contains("without a file descriptor"),
        "{err}"
    );
    assert!(!path.exists(), "the socket file is removed at the end");
}

/// The calling thread's id, from `/proc/thread-self` (`<pid>/task/<tid>`).
fn thread_id() -> i32 {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    link.file_name().unwrap().to_str().unwrap().parse().unwrap()
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Under umask 000 the socket file is still `0600`: nobody else may even
/// connect.
fn mode_0600() {
    use rustix::fs::Mode;
    let dir = TmpDir::new("pidfd-mode");
    let path = dir.path.join("pidfd.sock");
    let old = rustix::process::umask(Mode::empty());
    let listener = PidfdListener::bind(&path);
    rustix::process::umask(old);
    let _listener = listener.unwrap();
    assert_eq!(mode_of(&path), 0o600, "mode of {}", path.display());
}

/// A socket file left by a listener that is gone is replaced; a live
/// listener's, or a file that is not a socket, is refused with the path.
fn stale_and_live() {
    let dir = TmpDir::new("pidfd-stale");
    let path = dir.path.join("pidfd.sock");
    // What a SIGKILLed listener leaves: the file, nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let first = PidfdListener::bind(&path).expect("the stale socket is replaced");
    let before = open_fds();
    let err = PidfdListener::bind(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("live"), "{err}");
    assert_eq!(open_fds(), before, "the refusal leaked an fd");
    // The live one still works: the probe was only a connection.
    drop(first);
    let file = dir.path.join("file");
    std::fs::write(&file, "keep").unwrap();
    let err = PidfdListener::bind(&file).unwrap_err().to_string();
    assert!(
        err.contains(&file.display().to_string()) && err.contains("not a socket"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
}

/// A sender running as `nobody`, against a socket made world-writable (as a
/// careless chmod would): refused by its credentials, then accepted once
/// its uid is allowed.
fn peer_credentials() {
    if !rustix::process::geteuid().is_root() || !std::path::Path::new("/usr/bin/setpriv").exists() {
        assert!(!common::cgroups_required(), "needs root and setpriv");
        eprintln!("skipping: needs root and setpriv");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TmpDir::new("pidfd-peer");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path.join("pidfd.sock");
    let mut listener = PidfdListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let nobody = || {
        let mut cmd = std::process::Command::new("/usr/bin/setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(std::env::current_exe().unwrap())
            .arg(&path)
            .env("CTRMON_TEST_HELPER", "runc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        Kid::spawn(&mut cmd)
    };
    let accept = |l: &PidfdListener| {
        wait_readable(l.as_fd());
        l.accept()
    };
    let sender = nobody();
    let before = open_fds();
    let err = accept(&listener).unwrap_err();
    assert_eq!(open_fds(), before, "the refused connection stayed open");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("uid 65534") && text.contains(&format!("pid {}", sender.pid())),
        "{text}"
    );
    drop(sender);
    listener.allow_uid(65534);
    let mut sender = nobody();
    let conn = accept(&listener).unwrap().expect("a connection");
    let got = loop {
        wait_readable(conn.as_fd());
        if let Some(got) = conn.receive().unwrap() {
            break got;
        }
    };
    assert_eq!(got.pid, Some(sender.pid()));
    drop(sender.child.stdin.take());
}

/// A pidfd for a thread that is not its process's leader, opened with
/// `PIDFD_THREAD`: `watch_pidfd` says it is a thread's, and closes it.
fn watch_thread_pidfd() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tx.send(thread_id()).unwrap();
        let _ = stop_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let pidfd = pidfd_open(
        rustix::process::Pid::from_raw(tid).unwrap(),
        PidfdFlags::from_bits_retain(libc::O_EXCL as u32),
    )
    .expect("pidfd_open(PIDFD_THREAD)");
    let m: Monitor<()> = Monitor::new().unwrap();
    let before = open_fds();
    let err = m.watch(Process::pidfd(pidfd), ()).unwrap_err().to_string();
    stop_tx.send(()).unwrap();
    thread.join().unwrap();
    assert!(
        err.contains("thread") && err.contains(&tid.to_string()),
        "{err}"
    );
    assert_eq!(
        open_fds().len(),
        before.len() - 1,
        "the thread's pidfd was not closed"
    );
}

fn thread_sent() {
    refused("thread", "a thread's pidfd");
}

/// `ctrmon watch --pidfd-socket PATH ARGS` started by `sh -c "PREFIX; exec
/// ctrmon ..."` (a umask, a ulimit), its stdout read line by line by a
/// thread, its stderr in a file.
struct CliWatch {
    kid: Kid,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl CliWatch {
    fn start(dir: &TmpDir, prefix: &str, args: &[&str]) -> CliWatch {
        let path = dir.path.join("pidfd.sock");
        let stderr = dir.path.join("stderr");
        let script =
            format!("{prefix}; p=\"$1\"; shift; exec \"$0\" watch --pidfd-socket \"$p\" \"$@\"");
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", &script, env!("CARGO_BIN_EXE_ctrmon")])
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut kid = Kid::spawn(&mut cmd);
        let out = kid.child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let w = CliWatch {
            kid,
            lines,
            stderr,
            path,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(&w.path) {
            assert!(
                Instant::now() < deadline,
                "no socket at {}: {}",
                w.path.display(),
                w.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        w
    }

    fn line(&self, limit: Duration) -> String {
        self.lines.recv_timeout(limit).unwrap_or_else(|e| {
            panic!("no line in {limit:?} ({e}); stderr: {}", self.stderr_text())
        })
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// ctrmon's open fds, by count.
    fn kid_fds(&self) -> Option<usize> {
        Some(
            std::fs::read_dir(format!("/proc/{}/fd", self.kid.pid()))
                .ok()?
                .count(),
        )
    }

    /// ctrmon's fd count once it reads the same three times, 50 ms apart.
    fn settled_fds(&self) -> usize {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            seen.push(self.kid_fds().unwrap());
            let n = seen.len();
            if n >= 3 && seen[n - 1] == seen[n - 2] && seen[n - 2] == seen[n - 3] {
                return seen[n - 1];
            }
            assert!(
                Instant::now() < deadline,
                "fd count never settled: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and its status.
    fn stop(mut self) -> (Option<i32>, String) {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.kid.pid()).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let code = self.kid.child.wait().unwrap().code();
        (code, self.stderr_text())
    }
}

/// True when a socket listens at `path` (`/proc/net/unix`: the
/// `__SO_ACCEPTCON` flag, 0x10000, on a line for the path); a socket file
/// left by a dead listener does not count.
fn listening(path: &std::path::Path) -> bool {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let name = spath(path);
    table.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 8 && f[7] == name && f[3] == "00010000"
    })
}

fn spath(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// A sender running as nobody (`setpriv`), the socket made writable by
/// all so that only the peer check can refuse it.
fn nobody_sender(path: &std::path::Path) -> Kid {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut cmd = std::process::Command::new("/usr/bin/setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .arg(path)
        .env("CTRMON_TEST_HELPER", "runc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    Kid::spawn(&mut cmd)
}

/// Under umask 000: the socket is 0600; a sender running as `nobody` (the
/// file chmod'ed 0666 for it) is refused and named; a second ctrmon on the
/// same path is refused while the first lives, and replaces the socket once
/// the first was SIGKILLed.
fn cli_socket_access() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TmpDir::new("pidfd-cli-access");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let w = CliWatch::start(&dir, "umask 000", &[]);
    assert_eq!(mode_of(&w.path), 0o600);
    let root = rustix::process::geteuid().is_root();
    if root && std::path::Path::new("/usr/bin/setpriv").exists() {
        let nobody = nobody_sender(&w.path);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !w.stderr_text().contains("uid 65534") {
            assert!(
                Instant::now() < deadline,
                "not refused: {}",
                w.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(nobody);
        assert!(w.lines.try_recv().is_err(), "nobody's pidfd was reported");
    } else {
        assert!(!common::cgroups_required(), "needs root and setpriv");
    }
    // A twin on the same path, while the first is live.
    let twin = std::process::Command::new(env!("CARGO_BIN_EXE_ctrmon"))
        .args(["watch", "--pidfd-socket"])
        .arg(&w.path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&twin.stderr);
    assert_eq!(twin.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&spath(&w.path)) && err.contains("live"),
        "{err}"
    );
    assert!(w.path.exists(), "the twin removed the live socket");
    // SIGKILLed, the first leaves its socket; the next replaces it.
    w.kid.kill();
    assert!(w.kid.reap());
    assert!(w.path.exists());
    let w = CliWatch::start(&dir, "true", &["--pidfd-allow-uid", "65534"]);
    let mut good = Kid::spawn(
        helper("runc", &[spath(&w.path)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let line = w.line(Duration::from_secs(10));
    assert!(line.contains(&format!("\"pid\":{}", good.pid())), "{line}");
    drop(good.child.stdin.take());
    // `--pidfd-allow-uid 65534`: nobody may send now.
    if root && std::path::Path::new("/usr/bin/setpriv").exists() {
        let nobody = nobody_sender(&w.path);
        let line = w.line(Duration::from_secs(10));
        assert!(
            line.contains("\"event\":\"exit\"") || line.contains("\"event\":\"pidfd\""),
            "{line}"
        );
        // The good sender's exit may come first; then nobody's line.
        let line = if line.contains("\"event\":\"exit\"") {
            w.line(Duration::from_secs(10))
        } else {
            line
        };
        assert!(
            line.contains(&format!("\"pid\":{}", nobody.pid())),
            "{line}"
        );
    }
    let (code, err) = w.stop();
    assert_eq!(code, Some(0), "{err}");
}

/// (event, pid) of a JSON line.
fn event_pid(line: &str) -> (String, i64) {
    let field = |name: &str| {
        let at = line.find(&format!("\"{name}\":"))? + name.len() + 3;
        let rest = &line[at..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim_matches('"').to_string())
    };
    (
        field("event").unwrap_or_default(),
        field("pid").and_then(|p| p.parse().ok()).unwrap_or(-1),
    )
}

/// A sender that is reaped the moment it has sent: its `pidfd` line still
/// comes before its `exit`, every time.
fn cli_order() {
    let dir = TmpDir::new("pidfd-cli-order");
    let w = CliWatch::start(&dir, "true", &[]);
    let (mut zeros, mut differ) = (0, 0);
    for i in 0..60 {
        let status = helper("zombie", &[spath(&w.path), format!("z{i}")])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(5));
        let first = w.line(Duration::from_secs(10));
        let second = w.line(Duration::from_secs(10));
        let (a, pid_a) = event_pid(&first);
        let (b, pid_b) = event_pid(&second);
        assert_eq!(
            (a.as_str(), b.as_str()),
            ("pidfd", "exit"),
            "round {i}: {first} / {second}"
        );
        assert!(first.contains(&format!("\"payload\":\"z{i}\"")), "{first}");
        assert!(pid_a >= 0 && pid_b >= 0, "{first} / {second}");
        if pid_a == 0 {
            zeros += 1;
        }
        if pid_a != pid_b {
            differ += 1;
        }
    }
    eprintln!(
        "pid:0 in {zeros} of 60 pidfd lines (reaped before ctrmon read them); the exit's pid \
         differs from the line's in {differ}"
    );
    let (code, err) = w.stop();
    assert_eq!(code, Some(0), "{err}");
}

/// ctrmon's CPU time so far, in clock ticks (`/proc/<pid>/stat` fields 14
/// and 15).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Field 3 is index 0 here.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Out of fds (`ulimit -n 48`) with 80 idle connections: no stream of
/// messages, and a real sender is served while the idle ones still hold
/// their connections.
fn cli_pressure() {
    let dir = TmpDir::new("pidfd-cli-pressure");
    let w = CliWatch::start(&dir, "ulimit -n 48", &[]);
    let idle: Vec<UnixStream> = (0..80)
        .map(|_| UnixStream::connect(&w.path).expect("an idle connection"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut good = Kid::spawn(
        helper("runc", &[spath(&w.path)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let line = w.line(Duration::from_secs(8));
    assert!(line.contains(&format!("\"pid\":{}", good.pid())), "{line}");
    drop(good.child.stdin.take());
    assert_eq!(good.child.wait().unwrap().code(), Some(5));
    let exit = w.line(Duration::from_secs(10));
    assert!(exit.contains("\"event\":\"exit\""), "{exit}");
    // The idle clients are still connected (their end open); ctrmon may
    // have closed some of them to make room.
    let before = cpu_ticks(w.kid.pid());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(w.kid.pid()) - before;
    let err = w.stderr_text();
    let lines = err.lines().count();
    drop(idle);
    eprintln!("stderr: {lines} lines; {spent} ticks of CPU in the 1 s after");
    assert!(lines < 20, "{lines} lines on stderr:\n{err}");
    assert!(err.contains("not accepting more connections"), "{err}");
    let (code, err) = w.stop();
    assert_eq!(code, Some(0), "{err}");
}

/// 300 senders at once beside 80 idle connections under `ulimit -n 256`:
/// every pidfd is reported, its line before its exit; ctrmon's fds are
/// back to their number at the start.
fn cli_soak() {
    const SENDERS: usize = 300;
    let dir = TmpDir::new("pidfd-cli-soak");
    let w = CliWatch::start(&dir, "ulimit -n 256", &[]);
    // One round trip first, so that everything ctrmon opens once is open.
    helper("zombie", &[spath(&w.path), "warm".into()])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    w.line(Duration::from_secs(10));
    w.line(Duration::from_secs(10));
    // The listener takes its spare fds back just after the lines were
    // queued: the count is read once it has settled.
    let start_fds = w.settled_fds();
    let started = Instant::now();
    let cpu_before = cpu_ticks(w.kid.pid());
    let idle: Vec<UnixStream> = (0..80)
        .map(|_| UnixStream::connect(&w.path).expect("an idle connection"))
        .collect();
    let mut senders: Vec<std::process::Child> = (0..SENDERS)
        .map(|i| {
            helper("brief", &[spath(&w.path), format!("s{i}")])
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let reaper = std::thread::spawn(move || {
        for s in &mut senders {
            let _ = s.wait();
        }
    });
    let mut seen_pidfd = std::collections::HashMap::new();
    let (mut pidfds, mut exits, mut zeros) = (0usize, 0usize, 0usize);
    while pidfds < SENDERS || exits < SENDERS {
        let line = w.line(Duration::from_secs(60));
        let (event, pid) = event_pid(&line);
        match event.as_str() {
            "pidfd" => {
                pidfds += 1;
                if pid == 0 {
                    zeros += 1;
                } else {
                    seen_pidfd.insert(pid, ());
                }
            }
            "exit" => {
                exits += 1;
                assert!(
                    exits <= pidfds,
                    "an exit before any unmatched pidfd line: {line}"
                );
                assert!(
                    pid == 0 || seen_pidfd.contains_key(&pid),
                    "exit before its pidfd line: {line}"
                );
            }
            _ => panic!("{line}"),
        }
    }
    reaper.join().unwrap();
    let elapsed = started.elapsed();
    drop(idle);
    // The idle connections' ends are closed: ctrmon reads their EOF and
    // closes its ends.
    let deadline = Instant::now() + Duration::from_secs(15);
    while w.kid_fds().unwrap() != start_fds {
        assert!(
            Instant::now() < deadline,
            "fds {} at the end, {start_fds} at the start: {:?}",
            w.kid_fds().unwrap(),
            std::fs::read_dir(format!("/proc/{}/fd", w.kid.pid()))
                .unwrap()
                .flatten()
                .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = cpu_ticks(w.kid.pid()) - cpu_before;
    let err = w.stderr_text();
    eprintln!(
        "soak: {SENDERS} senders + 80 idle, ulimit -n 256: all {pidfds} pidfd lines before \
         their exits in {:.2} s, {zeros} with pid:0, ctrmon CPU {cpu} ticks, fds {start_fds} \
         at start and end, {} stderr lines",
        elapsed.as_secs_f64(),
        err.lines().count()
    );
    eprint!("{err}");
    let (code, err) = w.stop();
    assert_eq!(code, Some(0), "{err}");
}

/// What `PidfdListener::bind` relies on, checked against this kernel: the
/// file `bind` creates takes the mode of the socket's inode less the umask,
/// and `fchmod` on the unbound socket sets that mode (it is not ignored).
fn fchmod_before_bind() {
    use rustix::fs::Mode;
    use rustix::net::{bind, socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let dir = TmpDir::new("pidfd-fchmod");
    let make = |name: &str, mode: Option<u32>| {
        let path = dir.path.join(name);
        let sock = socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        if let Some(m) = mode {
            rustix::fs::fchmod(&sock, Mode::from_raw_mode(m)).unwrap();
        }
        let old = rustix::process::umask(Mode::empty());
        let bound = bind(&sock, &SocketAddrUnix::new(&path).unwrap());
        rustix::process::umask(old);
        bound.unwrap();
        mode_of(&path)
    };
    assert_eq!(make("plain", None), 0o777, "without fchmod, umask 000");
    assert_eq!(
        make("fchmod", Some(0o600)),
        0o600,
        "fchmod 0600 before bind"
    );
}
