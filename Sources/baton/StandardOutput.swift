import Glibc

/// Standard output for the commands that write as they run (`baton campaign`, `baton watch`): each line is
/// written at once, and a reader that went away (a closed pipe: `baton campaign | head -1`) is an answer the
/// command acts on, not a crash.
enum StandardOutput {
    /// Makes a write to a closed pipe fail with EPIPE rather than end the process by SIGPIPE, so that the command
    /// can release what it holds and say why it stops. Only for commands that start no child process (a child
    /// would inherit the ignored signal).
    static func failWritesToClosedPipes() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// Writes `text` whole; false when standard output can take no more (EPIPE: its reader is gone, or another
    /// error).
    @discardableResult
    static func write(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(STDOUT_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }

    /// What a command prints on standard error when its output is closed (it then exits with
    /// ``CommandOutcome/outputClosed``).
    static let closedMessage = "standard output was closed; stopping"
}
