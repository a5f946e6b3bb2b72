import BatonChaos

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The work records of one process: `DIR/<pid>.log`, appended to with one `write` per record, so a record is
/// either whole in the file or absent (also after `kill -9`).
final class WorkLog: Sendable {
    private let descriptor: Int32
    let holder: String
    let campaigner: Int32

    /// Opens (creating) this process's log in `directory`.
    init(directory: String, holder: String, campaigner: Int32) throws {
        let path = "\(directory)/\(getpid()).log"
        descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw WorkLogError(message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        self.holder = holder
        self.campaigner = campaigner
    }

    deinit { close(descriptor) }

    /// Appends one record stamped with the monotonic clock now.
    func append(_ kind: ChaosRecord.WorkKind, token: Int64) {
        let record = ChaosRecord.Work(
            time: ChaosRecord.now(), kind: kind, token: token, holder: holder, pid: getpid(), campaigner: campaigner)
        let line = Array((record.line + "\n").utf8)
        _ = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    }
}

struct WorkLogError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
