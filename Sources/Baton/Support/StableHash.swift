/// Hashes that are the same in every process and on every run (Swift's `Hasher` is seeded per process): for choices
/// that candidates in different processes must make alike.
package enum StableHash {
    /// FNV-1a (64 bits) of the UTF-8 of `text`.
    package static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return hash
    }

    /// The rendezvous score of `member` for `item` (higher wins): FNV-1a of both, mixed by SplitMix64's
    /// finalizer so that nearby names and numbers score independently.
    package static func score(_ member: String, _ item: Int) -> UInt64 {
        var z = fnv1a(member) ^ (UInt64(truncatingIfNeeded: item) &* 0x9e37_79b9_7f4a_7c15)
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
