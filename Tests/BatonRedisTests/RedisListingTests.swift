import Testing

@testable import BatonRedis

/// Listings scan with `MATCH`: a prefix's glob characters must match only themselves.
@Suite struct RedisListingTests {
    @Test func globCharactersAreEscaped() {
        #expect(RedisLeaseStore.globEscaped("jobs/") == "jobs/")
        #expect(RedisLeaseStore.globEscaped(#"a*b?[c]\d"#) == #"a\*b\?\[c\]\\d"#)
        #expect(RedisLeaseStore.globEscaped("é^-") == "é^-")
    }
}
