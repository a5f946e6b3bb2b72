import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A file of records that refuses stale leaders: every record is written under a fencing token, and a record whose
/// token is lower than the highest the file has accepted for its resource is refused.
///
/// ```swift
/// let ledger = FencedLedger(path: "/var/lib/cleaner/ledger")
/// try await elector.withLeadership { lease in
///     for job in jobs {
///         try process(job)
///         try ledger.append("job \(job.id) done", token: lease.token, resource: lease.key)
///     }
/// }
/// ```
///
/// A lease alone cannot stop a leader that was paused longer than its ttl (a long GC pause, a frozen VM, SIGSTOP):
/// it may write once more after another leader has started. The ledger refuses that write with
/// ``StaleFencingToken`` and leaves the file unchanged.
///
/// Every change takes an exclusive `flock` on `PATH.lock`, reads the file, checks the token, and replaces the file
/// atomically (it writes `PATH.tmp`, `fsync`s it and renames it over `PATH`), so writers in any number of processes
/// on one host see one history, and a crash leaves the old file or the new one, never a mix. The file is text:
///
/// ```
/// baton-fenced-ledger 1
/// highest<TAB>RESOURCE<TAB>TOKEN        one line per resource
/// record<TAB>TOKEN<TAB>RESOURCE<TAB>TEXT one line per record, in the order written
/// ```
///
/// Resources and texts may not contain tabs or line breaks. The whole file is rewritten per record, which suits a
/// ledger of thousands of records, not millions; a record store with its own transactions is better fenced there
/// (as `PostgresFencing` does for PostgreSQL).
public struct FencedLedger: Sendable {
    /// One record of the ledger.
    public struct Record: Sendable, Hashable {
        /// The token it was written under.
        public var token: FencingToken
        /// The resource whose tokens it was checked against.
        public var resource: String
        /// What the writer recorded.
        public var text: String

        public init(token: FencingToken, resource: String, text: String) {
            self.token = token
            self.resource = resource
            self.text = text
        }
    }

    /// What the ledger holds.
    public struct Contents: Sendable, Hashable {
        /// The highest token accepted per resource.
        public var highest: [String: FencingToken] = [:]
        /// The records, in the order they were written.
        public var records: [Record] = []

        public init(highest: [String: FencingToken] = [:], records: [Record] = []) {
            self.highest = highest
            self.records = records
        }
    }

    /// The file cannot be read or written, or is not a ledger.
    public struct FileError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The ledger's file.
    public let path: String

    /// A ledger at `path`; the file (and `PATH.lock`, `PATH.tmp` beside it) is made by the first write.
    public init(path: String) {
        self.path = path
    }

    /// Reads the ledger (empty if the file does not exist yet).
    /// - Throws: ``FileError`` if the file cannot be read or is not a ledger.
    public func read() throws -> Contents {
        try locked { try load() }
    }

    /// Appends a record written under `token` for `resource`, raising the resource's highest token.
    /// - Throws: ``StaleFencingToken`` if the ledger has accepted a higher token for `resource` (the file is
    ///   unchanged); ``BatonError`` `invalidArgument` for a resource or text with a tab or line break, or an empty
    ///   resource; ``FileError`` if the file cannot be read or written.
    @discardableResult
    public func append(_ text: String, token: FencingToken, resource: String) throws -> Contents {
        try Self.validate(text, what: "text")
        try Self.validate(resource, what: "resource")
        if resource.isEmpty { throw BatonError.invalidArgument("a ledger's resource must not be empty") }
        return try locked {
            var contents = try load()
            if let highest = contents.highest[resource], token < highest {
                throw StaleFencingToken(resource: resource, token: token, highest: highest)
            }
            contents.highest[resource] = token
            contents.records.append(Record(token: token, resource: resource, text: text))
            try save(contents)
            return contents
        }
    }

    // MARK: The file

    static let header = "baton-fenced-ledger 1"

    private static func validate(_ value: String, what: String) throws {
        if value.contains(where: { $0 == "\t" || $0.isNewline }) {
            throw BatonError.invalidArgument("a ledger's \(what) must not contain a tab or a line break")
        }
    }

    private func locked<T>(_ body: () throws -> T) throws -> T {
        let descriptor = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileError(description: "cannot open \(path).lock: \(Self.lastError())") }
        defer { close(descriptor) }
        var result: Int32
        repeat { result = flock(descriptor, LOCK_EX) } while result != 0 && errno == EINTR
        guard result == 0 else { throw FileError(description: "cannot lock \(path).lock: \(Self.lastError())") }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    private func load() throws -> Contents {
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) {
                throw FileError(description: "cannot read \(path)")
            }
            return Contents()
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw FileError(description: "\(path) is not UTF-8 text")
        }
        var contents = Contents()
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if index == 0 {
                guard line == Self.header else {
                    throw FileError(
                        description: "\(path) is not a fenced ledger (its first line is not \(Self.header))")
                }
                continue
            }
            if line.isEmpty { continue }
            let fields = line.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false)
            switch (fields.first, fields.count) {
            case ("highest", 3):
                guard let token = FencingToken(fields[2]) else { throw malformed(index, line) }
                contents.highest[String(fields[1])] = token
            case ("record", 4):
                guard let token = FencingToken(fields[1]) else { throw malformed(index, line) }
                contents.records.append(Record(token: token, resource: String(fields[2]), text: String(fields[3])))
            default:
                throw malformed(index, line)
            }
        }
        return contents
    }

    private func malformed(_ index: Int, _ line: Substring) -> FileError {
        FileError(description: "\(path), line \(index + 1) is malformed: \(line.prefix(200))")
    }

    private func save(_ contents: Contents) throws {
        var text = Self.header + "\n"
        for (resource, token) in contents.highest.sorted(by: { $0.key < $1.key }) {
            text += "highest\t\(resource)\t\(token)\n"
        }
        for record in contents.records {
            text += "record\t\(record.token)\t\(record.resource)\t\(record.text)\n"
        }
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileError(description: "cannot write \(temporary): \(Self.lastError())") }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                let reason = Self.lastError()
                close(descriptor)
                throw FileError(description: "cannot write \(temporary): \(reason)")
            }
            offset += written
        }
        let synced = fsync(descriptor)
        let reason = synced == 0 ? "" : Self.lastError()
        close(descriptor)
        guard synced == 0 else { throw FileError(description: "cannot sync \(temporary): \(reason)") }
        guard rename(temporary, path) == 0 else {
            throw FileError(description: "cannot replace \(path): \(Self.lastError())")
        }
    }

    private static func lastError() -> String {
        String(cString: strerror(errno))
    }
}
