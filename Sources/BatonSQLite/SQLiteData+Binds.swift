import SQLiteNIO

/// Binds of the values the store writes.
extension SQLiteData {
    static func int64(_ value: Int64) -> SQLiteData { .integer(SQLiteInt64(value)) }

    static func optionalText(_ value: String?) -> SQLiteData { value.map { .text($0) } ?? .null }
}
