import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A resource that refuses stale leaders: a text file of processed jobs that remembers the highest fencing token
/// it has accepted and refuses any write with a smaller one.
///
/// Every write takes an exclusive `flock` on `PATH.lock`, reads the file, checks the token, and replaces the file
/// atomically (write `PATH.tmp`, `fsync`, `rename`), so concurrent writers from any number of processes see one
/// history. The file's first line is `highest-token N`; each further line is `job J token T holder H`.
struct FencedLedger {
    /// A write carried a token smaller than one the ledger has already accepted.
    struct StaleToken: Error, CustomStringConvertible {
        var token: Int64
        var highest: Int64
        var description: String { "the ledger refused token \(token): it has already accepted token \(highest)" }
    }

    /// A line of the ledger that is not in the expected form, or a file that cannot be read or written.
    struct LedgerError: Error, CustomStringConvertible {
        var description: String
    }

    /// What the ledger holds.
    struct Contents: Equatable {
        var highestToken: Int64 = 0
        var jobs: [(job: Int, token: Int64, holder: String)] = []

        static func == (lhs: Contents, rhs: Contents) -> Bool {
            lhs.highestToken == rhs.highestToken
                && lhs.jobs.elementsEqual(rhs.jobs) {
                    $0.job == $1.job && $0.token == $1.token && $0.holder == $1.holder
                }
        }

        /// The next job to process: one after the last recorded job.
        var nextJob: Int { (jobs.last?.job ?? 0) + 1 }
    }

    let path: String

    /// Reads the ledger (empty if the file does not exist yet).
    func read() throws -> Contents {
        try withLock { try load() }
    }

    /// Records `job` as done under fencing token `token`.
    /// - Throws: ``StaleToken`` if the ledger has accepted a larger token, leaving the file unchanged.
    func record(job: Int, token: Int64, holder: String) throws {
        try withLock {
            var contents = try load()
            guard token >= contents.highestToken else {
                throw StaleToken(token: token, highest: contents.highestToken)
            }
            contents.highestToken = token
            contents.jobs.append((job, token, holder))
            try store(contents)
        }
    }

    private func withLock<T>(_ body: () throws -> T) throws -> T {
        let descriptor = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw LedgerError(description: "cannot open \(path).lock: errno \(errno)") }
        defer { close(descriptor) }
        guard flock(descriptor, LOCK_EX) == 0 else {
            throw LedgerError(description: "cannot lock \(path).lock: errno \(errno)")
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    private func load() throws -> Contents {
        guard let data = FileManager.default.contents(atPath: path) else { return Contents() }
        guard let text = String(data: data, encoding: .utf8) else {
            throw LedgerError(description: "\(path) is not UTF-8")
        }
        var contents = Contents()
        for (number, line) in text.split(separator: "\n").enumerated() {
            let fields = line.split(separator: " ")
            if number == 0, fields.count == 2, fields[0] == "highest-token", let highest = Int64(fields[1]) {
                contents.highestToken = highest
            } else if number > 0, fields.count == 6, fields[0] == "job", fields[2] == "token", fields[4] == "holder",
                let job = Int(fields[1]), let token = Int64(fields[3])
            {
                contents.jobs.append((job, token, String(fields[5])))
            } else {
                throw LedgerError(description: "\(path), line \(number + 1) is malformed: \(line)")
            }
        }
        return contents
    }

    private func store(_ contents: Contents) throws {
        var text = "highest-token \(contents.highestToken)\n"
        for entry in contents.jobs {
            text += "job \(entry.job) token \(entry.token) holder \(entry.holder)\n"
        }
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw LedgerError(description: "cannot write \(temporary): errno \(errno)") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == bytes.count, synced == 0 else {
            throw LedgerError(description: "cannot write \(temporary): errno \(errno)")
        }
        guard rename(temporary, path) == 0 else {
            throw LedgerError(description: "cannot replace \(path): errno \(errno)")
        }
    }
}
