@_spi(BatonStoreKit) import Baton
import Logging
import SQLiteNIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The sidecar file through which processes sharing one SQLite store wake each other.
///
/// A writer that commits a change watchers should see (a new term, a release, new metadata) writes one byte
/// to the file; every process watching the file with inotify is woken at once. The byte carries no data: the
/// woken process reads the database again.
enum ChangeFile {
    /// Writes one byte to the sidecar at `path`, creating it if needed.
    /// - Returns: nil on success, else the `errno` of the failing call.
    static func touch(_ path: String) -> Int32? {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var byte: UInt8 = 1
        let written = pwrite(fd, &byte, 1, 0)
        return written == 1 ? nil : errno
    }

    /// Creates the sidecar at `path` if it does not exist (without modifying it, so no watcher is woken).
    /// - Returns: nil on success, else the `errno` of the failing call.
    static func create(_ path: String) -> Int32? {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return errno }
        close(fd)
        return nil
    }

    /// A readable text for an `errno` value.
    static func describe(_ code: Int32) -> String {
        String(cString: strerror(code)) + " (errno \(code))"
    }
}

/// Watches the sidecar file with inotify on one dedicated thread and wakes every subscriber of a store's
/// ``ChangeSignals`` when another process (or this one) touches it.
///
/// The thread sleeps in `poll(2)` on the inotify descriptor and on the read end of a pipe; ``shutdown(_:)``
/// writes to the pipe, so stopping takes effect at once. If the sidecar is deleted or renamed, the watch is
/// added again on a fresh file and every subscriber is woken, so no change is lost.
final class ChangeFileWatcher: Sendable {
    private let path: String
    private let inotifyFD: Int32
    private let stopReadFD: Int32
    private let stopWriteFD: Int32
    private let firstWatch: Int32
    private let thread: NIOThreadPool
    private let signals: ChangeSignals
    private let logger: Logger

    private static let watchMask = UInt32(IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

    /// Adds the inotify watch on `path` (creating the file if needed) and starts the watching thread. The watch
    /// is in place when this returns, so a change made afterwards is never missed.
    /// - Throws: a message naming the failing system call.
    init(path: String, signals: ChangeSignals, logger: Logger) throws(WatchError) {
        if let code = ChangeFile.create(path) {
            throw WatchError(message: "cannot create \(path): \(ChangeFile.describe(code))")
        }
        let inotifyFD = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard inotifyFD >= 0 else {
            throw WatchError(message: "inotify_init1 failed: \(ChangeFile.describe(errno))")
        }
        let watch = inotify_add_watch(inotifyFD, path, Self.watchMask)
        guard watch >= 0 else {
            let code = errno
            close(inotifyFD)
            throw WatchError(message: "inotify_add_watch(\(path)) failed: \(ChangeFile.describe(code))")
        }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            let code = errno
            close(inotifyFD)
            throw WatchError(message: "pipe failed: \(ChangeFile.describe(code))")
        }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        self.path = path
        self.inotifyFD = inotifyFD
        self.stopReadFD = pipeFDs[0]
        self.stopWriteFD = pipeFDs[1]
        self.firstWatch = watch
        self.signals = signals
        self.logger = logger
        self.thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        thread.submit { [self] state in
            guard case .active = state else { return }
            watchLoop()
        }
    }

    /// Stops the thread and closes the descriptors; `done` runs when the thread has ended.
    func shutdown(_ done: @escaping @Sendable () -> Void = {}) {
        var byte: UInt8 = 1
        _ = write(stopWriteFD, &byte, 1)
        // The graceful shutdown joins the thread, which leaves its loop as soon as it sees the pipe readable.
        thread.shutdownGracefully { [self] _ in
            close(inotifyFD)
            close(stopReadFD)
            close(stopWriteFD)
            done()
        }
    }

    /// Stops the thread and closes the descriptors, returning when the thread has ended.
    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            shutdown { continuation.resume() }
        }
    }

    /// The body of the watching thread.
    private func watchLoop() {
        var watch = firstWatch
        var descriptors = [
            pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stopReadFD, events: Int16(POLLIN), revents: 0),
        ]
        let bufferSize = 4096
        let buffer = UnsafeMutableRawPointer.allocate(
            byteCount: bufferSize,
            alignment: MemoryLayout<inotify_event>.alignment
        )
        defer { buffer.deallocate() }
        while true {
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            if poll(&descriptors, 2, -1) < 0 {
                let code = errno
                if code == EINTR { continue }
                logger.error(
                    "baton: poll on the change file failed; changes from other processes are no longer pushed",
                    metadata: ["path": "\(path)", "error": "\(ChangeFile.describe(code))"]
                )
                return
            }
            if descriptors[1].revents != 0 { return }
            guard descriptors[0].revents != 0 else { continue }
            var rewatch = false
            while true {
                let count = read(inotifyFD, buffer, bufferSize)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                var offset = 0
                while offset + MemoryLayout<inotify_event>.size <= count {
                    let event = buffer.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    if event.mask & UInt32(IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF) != 0 { rewatch = true }
                    offset += MemoryLayout<inotify_event>.size + Int(event.len)
                }
            }
            if rewatch {
                // The file was deleted or replaced: watch the file now at the path, and wake everyone, since a
                // change may have been written to the new file before the watch was added.
                _ = inotify_rm_watch(inotifyFD, watch)
                _ = ChangeFile.create(path)
                watch = inotify_add_watch(inotifyFD, path, Self.watchMask)
                if watch < 0 {
                    let code = errno
                    logger.error(
                        "baton: cannot watch the change file again; changes from other processes are no longer pushed",
                        metadata: ["path": "\(path)", "error": "\(ChangeFile.describe(code))"]
                    )
                }
            }
            signals.notifyAll()
        }
    }

    /// Why the watch could not be set up.
    struct WatchError: Error {
        var message: String
    }
}
