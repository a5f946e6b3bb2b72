extension BatonValidation {
    /// Checks a listing's prefix: 0–256 bytes of UTF-8 without control characters (empty: everything).
    /// - Throws: ``BatonError`` `invalidArgument` naming what is wrong.
    @_spi(BatonStoreKit) public static func prefix(_ value: String) throws(BatonError) {
        if value.isEmpty { return }
        try name(value, "prefix")
    }

    /// Checks a listing's limit: 1 to `max`.
    /// - Throws: ``BatonError`` `invalidArgument` naming the field and the allowed range.
    @_spi(BatonStoreKit) public static func limit(_ value: Int, max: Int, _ field: String = "limit")
        throws(BatonError)
    {
        if value < 1 || value > max {
            throw .invalidArgument("\(field) must be 1–\(max), got \(value)")
        }
    }
}
