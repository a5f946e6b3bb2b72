@_spi(BatonStoreKit) import Baton

extension LeaseStoreConformance {
    static let validationChecks: [ConformanceCheck] = [
        leaseArgumentsValidated,
        roundArgumentsValidated,
        presenceArgumentsValidated,
        argumentsAtTheLimitsAccepted,
    ]

    /// Malformed names, each with what is wrong with it.
    static let invalidNames: [(String, String)] = [
        ("", "an empty name"),
        (String(repeating: "k", count: 257), "a 257-byte name"),
        (String(repeating: "é", count: 128) + "k", "a 257-byte name of two-byte characters"),
        ("line\nbreak", "a name containing \"\\n\""),
        ("delete\u{7F}char", "a name containing U+007F"),
        ("nul\u{0}char", "a name containing U+0000"),
    ]

    /// Malformed ttls and retentions.
    static let invalidDurations: [(Duration, String)] = [
        (.zero, "zero"),
        (.milliseconds(-1), "negative"),
    ]

    /// Metadata one byte over the limit.
    static let oversizedMetadata = String(repeating: "m", count: BatonValidation.maxMetadataBytes + 1)

    static let leaseArgumentsValidated = ConformanceCheck(
        "validation: acquire, renew, release, current and changes reject malformed arguments with invalidArgument"
    ) { harness in
        let store = try await harness.makeStore()
        let key = Conformance.unique("validate-lease")
        let ttl = Conformance.longTTL(harness)
        let lease = Lease(key: key, holder: "holder-a", token: 1, ttl: ttl)
        let invalid = BatonError.Code.invalidArgument
        for (name, what) in invalidNames {
            try await Conformance.expectError(invalid, "acquire with \(what) as key") {
                try await store.acquire(key: name, holder: "holder-a", ttl: ttl, metadata: nil)
            }
            try await Conformance.expectError(invalid, "acquire with \(what) as holder") {
                try await store.acquire(key: key, holder: name, ttl: ttl, metadata: nil)
            }
            var badKey = lease
            badKey.key = name
            var badHolder = lease
            badHolder.holder = name
            for (bad, field) in [(badKey, "key"), (badHolder, "holder")] {
                try await Conformance.expectError(invalid, "renew of a lease with \(what) as \(field)") {
                    try await store.renew(bad, ttl: ttl)
                }
                try await Conformance.expectError(invalid, "release of a lease with \(what) as \(field)") {
                    try await store.release(bad)
                }
            }
            try await Conformance.expectError(invalid, "current with \(what) as key") {
                try await store.current(key: name)
            }
            try await Conformance.expectError(invalid, "changes with \(what) as key (thrown at once)") {
                try store.changes(key: name)
            }
        }
        for (duration, what) in invalidDurations {
            try await Conformance.expectError(invalid, "acquire with a \(what) ttl") {
                try await store.acquire(key: key, holder: "holder-a", ttl: duration, metadata: nil)
            }
            try await Conformance.expectError(invalid, "renew with a \(what) ttl") {
                try await store.renew(lease, ttl: duration)
            }
        }
        try await Conformance.expectError(invalid, "acquire with metadata of 4097 bytes") {
            try await store.acquire(key: key, holder: "holder-a", ttl: ttl, metadata: oversizedMetadata)
        }
        var bigMetadata = lease
        bigMetadata.metadata = oversizedMetadata
        try await Conformance.expectError(invalid, "renew of a lease with metadata of 4097 bytes") {
            try await store.renew(bigMetadata, ttl: ttl)
        }
        let current = try await store.current(key: key)
        try expect(current == nil, "rejected acquires took the key: current(key:) is \(Conformance.show(current))")
    }

    static let roundArgumentsValidated = ConformanceCheck(
        "validation: claim, winner, complete and completion reject malformed arguments with invalidArgument"
    ) { harness in
        let store = try await harness.makeStore()
        let system = Conformance.unique("validate-round")
        let round = "round"
        let retention = Duration.seconds(600)
        let invalid = BatonError.Code.invalidArgument
        for (name, what) in invalidNames {
            for (badSystem, badRound, field) in [(name, round, "system"), (system, name, "round")] {
                try await Conformance.expectError(invalid, "claim with \(what) as \(field)") {
                    try await store.claim(system: badSystem, round: badRound, candidate: "host-a", retention: retention)
                }
                try await Conformance.expectError(invalid, "winner with \(what) as \(field)") {
                    try await store.winner(system: badSystem, round: badRound)
                }
                try await Conformance.expectError(invalid, "complete with \(what) as \(field)") {
                    try await store.complete(
                        system: badSystem,
                        round: badRound,
                        by: .candidate("host-a"),
                        retention: retention
                    )
                }
                try await Conformance.expectError(invalid, "completion with \(what) as \(field)") {
                    try await store.completion(system: badSystem, round: badRound)
                }
            }
            try await Conformance.expectError(invalid, "claim with \(what) as candidate") {
                try await store.claim(system: system, round: round, candidate: name, retention: retention)
            }
            for completer in [Completer.candidate(name), .anonymous(name)] {
                try await Conformance.expectError(invalid, "complete by \(completer.description.prefix(9)) \(what)") {
                    try await store.complete(system: system, round: round, by: completer, retention: retention)
                }
            }
        }
        for (duration, what) in invalidDurations {
            try await Conformance.expectError(invalid, "claim with a \(what) retention") {
                try await store.claim(system: system, round: round, candidate: "host-a", retention: duration)
            }
            try await Conformance.expectError(invalid, "complete with a \(what) retention") {
                try await store.complete(system: system, round: round, by: .anonymous("host-a"), retention: duration)
            }
        }
        let winner = try await store.winner(system: system, round: round)
        try expect(winner == nil, "rejected claims claimed the round: winner is \(winner ?? "nil")")
        let completion = try await store.completion(system: system, round: round)
        try expect(completion == nil, "rejected completions completed the round: \(completion ?? "nil")")
    }

    static let presenceArgumentsValidated = ConformanceCheck(
        "validation: heartbeat, leave and members reject malformed arguments with invalidArgument"
    ) { harness in
        let store = try await harness.makeStore()
        let group = Conformance.unique("validate-presence")
        let ttl = Conformance.longTTL(harness)
        let invalid = BatonError.Code.invalidArgument
        for (name, what) in invalidNames {
            try await Conformance.expectError(invalid, "heartbeat with \(what) as group") {
                try await store.heartbeat(group: name, member: "member", ttl: ttl)
            }
            try await Conformance.expectError(invalid, "heartbeat with \(what) as member") {
                try await store.heartbeat(group: group, member: name, ttl: ttl)
            }
            try await Conformance.expectError(invalid, "leave with \(what) as group") {
                try await store.leave(group: name, member: "member")
            }
            try await Conformance.expectError(invalid, "leave with \(what) as member") {
                try await store.leave(group: group, member: name)
            }
            try await Conformance.expectError(invalid, "members with \(what) as group") {
                try await store.members(group: name)
            }
        }
        for (duration, what) in invalidDurations {
            try await Conformance.expectError(invalid, "heartbeat with a \(what) ttl") {
                try await store.heartbeat(group: group, member: "member", ttl: duration)
            }
        }
        let members = try await store.members(group: group)
        try expect(members.isEmpty, "rejected heartbeats joined the group: members are \(members)")
    }

    static let argumentsAtTheLimitsAccepted = ConformanceCheck(
        "validation: 256-byte names, multi-byte UTF-8 names and 4096-byte metadata are accepted intact"
    ) { harness in
        let store = try await harness.makeStore()
        let ttl = Conformance.longTTL(harness)
        let prefix = Conformance.unique("limit") + "-"
        let key = prefix + String(repeating: "k", count: BatonValidation.maxNameBytes - prefix.utf8.count)
        let holder = String(repeating: "é", count: BatonValidation.maxNameBytes / 2)
        let metadata = String(repeating: "m", count: BatonValidation.maxMetadataBytes - 5) + "€é"
        try expect(
            key.utf8.count == 256 && holder.utf8.count == 256 && metadata.utf8.count == 4096,
            "the suite built names of the wrong size"
        )
        let lease = try Conformance.acquired(
            try await store.acquire(key: key, holder: holder, ttl: ttl, metadata: metadata),
            "acquire with a 256-byte key and holder and 4096-byte metadata"
        )
        let current = try await store.current(key: key)
        try expect(
            current?.holder == holder && current?.metadata == metadata,
            "a 256-byte holder or 4096-byte metadata did not come back intact from current(key:)"
        )
        _ = try await store.renew(lease, ttl: ttl)
        try await store.release(lease)
        let unicode = Conformance.unique("ünïcödé-système ☃ 🗝")
        let claim = try await store.claim(system: unicode, round: "Øresund 08:00", candidate: holder, retention: ttl)
        try expect(claim == .won, "a claim with multi-byte UTF-8 names returned \(claim)")
        let winner = try await store.winner(system: unicode, round: "Øresund 08:00")
        try expect(winner == holder, "the winner did not come back intact: \(winner ?? "nil")")
        try await store.heartbeat(group: unicode, member: "membre-é", ttl: ttl)
        let members = try await store.members(group: unicode)
        try expect(members == ["membre-é"], "a multi-byte member did not come back intact: \(members)")
        try await store.leave(group: unicode, member: "membre-é")
    }
}
