fn main() -> std::process::ExitCode {
    denorm::cli::main()
}
