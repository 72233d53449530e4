//! The `ctrmon` command (being built; see issue 5).
fn main() {
    eprintln!("ctrmon: the command line is not built yet");
    std::process::exit(2);
}
