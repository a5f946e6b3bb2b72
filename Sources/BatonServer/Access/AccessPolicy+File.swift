@_spi(BatonStoreKit) import Baton
import Foundation

extension AccessPolicy {
    /// The fields an entry of `tokens` may have.
    static let entryFields: Set<String> = ["name", "token", "sha256", "read", "write"]
    /// The longest token accepted in the file, in bytes.
    static let maxTokenBytes = 4096

    /// Reads the access file's JSON (see ``AccessPolicy``).
    /// - Throws: ``BatonError`` `invalidArgument` naming the entry (`tokens[2] "team-a"`) and the field that is
    ///   wrong: malformed JSON (with its line and column), an unknown field, a missing or doubled token, a digest
    ///   that is not 64 hex digits, a prefix that is not a string, too long or holds a control character, two
    ///   entries with the same token, no entries. A token is never part of a message.
    public init(json data: Data) throws(BatonError) {
        let root: JSONValue
        do {
            root = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw .invalidArgument("not valid JSON\(Self.errorPosition(in: data))")
        }
        guard case .object(let top) = root else {
            throw .invalidArgument("the file must hold a JSON object {\"tokens\": [...]}, not \(root.kind)")
        }
        if let unknown = top.keys.sorted().first(where: { $0 != "tokens" }) {
            throw .invalidArgument("unknown field \"\(unknown)\" at the top; the only field is \"tokens\"")
        }
        guard case .array(let list) = top["tokens"] ?? .null else {
            throw .invalidArgument("\"tokens\" must be an array of entries, got \(top["tokens"]?.kind ?? "nothing")")
        }
        guard !list.isEmpty else {
            throw .invalidArgument("\"tokens\" is empty: no request could be answered")
        }
        var entries: [Entry] = []
        var names: [String] = []
        for (index, value) in list.enumerated() {
            let entry = try Self.entry(value, index: index)
            if let twin = entries.firstIndex(where: { Self.constantTimeEquals($0.digest, entry.digest) }) {
                throw .invalidArgument("\(Self.label(index, entry.scope.name)): the same token as \(names[twin])")
            }
            entries.append(entry)
            names.append(Self.label(index, entry.scope.name))
        }
        self.entries = entries
    }

    /// `tokens[2] "team-a"`, or `tokens[2]` for an entry without a name.
    static func label(_ index: Int, _ name: String?) -> String {
        guard let name, name != "tokens[\(index)]" else { return "tokens[\(index)]" }
        return "tokens[\(index)] \"\(name)\""
    }

    private static func entry(_ value: JSONValue, index: Int) throws(BatonError) -> Entry {
        guard case .object(let fields) = value else {
            throw .invalidArgument("tokens[\(index)] must be an object, not \(value.kind)")
        }
        var name: String?
        if let given = fields["name"] {
            guard case .string(let text) = given, !text.isEmpty, text.utf8.count <= BatonValidation.maxNameBytes,
                !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else {
                throw .invalidArgument(
                    "tokens[\(index)]: \"name\" must be a string of 1–256 bytes without control characters")
            }
            name = text
        }
        let entryLabel = label(index, name)
        if let unknown = fields.keys.sorted().first(where: { !entryFields.contains($0) }) {
            throw .invalidArgument(
                "\(entryLabel): unknown field \"\(unknown)\"; the fields are name, token, sha256, read and write")
        }
        let digest: [UInt8]
        let isClear: Bool
        switch (fields["token"], fields["sha256"]) {
        case (nil, nil):
            throw .invalidArgument("\(entryLabel): give the token as \"token\" or its digest as \"sha256\"")
        case (.some, .some):
            throw .invalidArgument("\(entryLabel): give either \"token\" or \"sha256\", not both")
        case (.some(let token), nil):
            guard case .string(let text) = token else {
                throw .invalidArgument("\(entryLabel): \"token\" must be a string, not \(token.kind)")
            }
            guard !text.isEmpty, text.utf8.count <= maxTokenBytes,
                text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
            else {
                throw .invalidArgument(
                    "\(entryLabel): \"token\" must be 1–\(maxTokenBytes) printable ASCII characters without spaces, "
                        + "as it is sent in the Authorization header")
            }
            digest = Self.digest(text)
            isClear = true
        case (nil, .some(let hash)):
            guard case .string(let text) = hash, let bytes = Self.hexBytes(text), bytes.count == 32 else {
                throw .invalidArgument(
                    "\(entryLabel): \"sha256\" must be 64 hex digits, the SHA-256 of the token "
                        + "(printf %s \"$TOKEN\" | sha256sum)")
            }
            digest = bytes
            isClear = false
        }
        let read = try prefixes(fields["read"], "read", entryLabel)
        let write = try prefixes(fields["write"], "write", entryLabel)
        return Entry(
            scope: AccessScope(name: name ?? "tokens[\(index)]", read: read, write: write), digest: digest,
            isClear: isClear)
    }

    private static func prefixes(_ value: JSONValue?, _ field: String, _ entryLabel: String) throws(BatonError)
        -> [String]
    {
        guard let value else { return [] }
        guard case .array(let items) = value else {
            throw .invalidArgument(
                "\(entryLabel): \"\(field)\" must be an array of key prefixes (\"\" for every key), not \(value.kind)")
        }
        var prefixes: [String] = []
        for (position, item) in items.enumerated() {
            guard case .string(let prefix) = item else {
                throw .invalidArgument("\(entryLabel): \"\(field)\"[\(position)] must be a string, not \(item.kind)")
            }
            if prefix.utf8.count > BatonValidation.maxNameBytes {
                throw .invalidArgument(
                    "\(entryLabel): \"\(field)\"[\(position)] is \(prefix.utf8.count) bytes long; a key has at most "
                        + "\(BatonValidation.maxNameBytes)")
            }
            if prefix.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                throw .invalidArgument("\(entryLabel): \"\(field)\"[\(position)] contains a control character")
            }
            prefixes.append(prefix)
        }
        return prefixes
    }

    /// The bytes of a hex string, or nil if it is not whole hex digits.
    private static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for pair in stride(from: 0, to: digits.count, by: 2) {
            guard let high = String.hexValue(digits[pair]), let low = String.hexValue(digits[pair + 1]) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// `: around line 3, column 7`, where the JSON in `data` goes wrong, or "" — only the position, since the
    /// parser's own message may quote the file (and so a token).
    private static func errorPosition(in data: Data) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return ""
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? ""
            guard let marker = detail.range(of: "character "),
                let offset = Int(detail[marker.upperBound...].prefix { $0.isNumber })
            else { return "" }
            let before = data.prefix(offset)
            let line = before.count { $0 == UInt8(ascii: "\n") } + 1
            let column = offset - (before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) + 1
            return ": around line \(line), column \(column)"
        }
    }
}
