import Baton

extension LeaseStoreConformance {
    static let roundChecks: [ConformanceCheck] = [
        claimIsIdempotentAndExclusive,
        concurrentClaims,
        completionByNamedCandidates,
        completionByAnonymousCallers,
        roundRetention,
        roundsAreIndependent,
    ]

    static let claimIsIdempotentAndExclusive = ConformanceCheck(
        "claim: the first claimant wins, again on retry; others lose naming it"
    ) { harness in
        let store = try await harness.makeStore()
        let system = Conformance.unique("claim")
        let round = "2026-11-23T08:00"
        let before = try await store.winner(system: system, round: round)
        try expect(before == nil, "winner(system:round:) of an unclaimed round is \(before ?? "nil"), expected nil")
        let first = try await store.claim(system: system, round: round, candidate: "host-a", retention: .seconds(600))
        try expect(first == .won, "the first claim returned \(first), expected won")
        let retry = try await store.claim(system: system, round: round, candidate: "host-a", retention: .seconds(600))
        try expect(retry == .won, "the winner claiming again returned \(retry), expected won")
        let other = try await store.claim(system: system, round: round, candidate: "host-b", retention: .seconds(600))
        try expect(
            other == .lost(winner: "host-a"),
            "another candidate's claim returned \(other), expected lost(winner: \"host-a\")"
        )
        let winner = try await store.winner(system: system, round: round)
        try expect(winner == "host-a", "winner(system:round:) is \(winner ?? "nil"), expected host-a")
        let completion = try await store.completion(system: system, round: round)
        try expect(completion == nil, "completion(system:round:) before any completion is \(completion ?? "nil")")
    }

    static let concurrentClaims = ConformanceCheck(
        "claim: exactly one of 20 concurrent claimants wins and every loser names it"
    ) { harness in
        let store = try await harness.makeStore()
        let system = Conformance.unique("claim-race")
        let round = "round-1"
        let answers = try await withThrowingTaskGroup(of: (String, ClaimResult).self) { group in
            for index in 0..<20 {
                let candidate = "candidate-\(index)"
                group.addTask {
                    (
                        candidate,
                        try await store.claim(
                            system: system,
                            round: round,
                            candidate: candidate,
                            retention: .seconds(600)
                        )
                    )
                }
            }
            var answers: [(String, ClaimResult)] = []
            for try await answer in group { answers.append(answer) }
            return answers
        }
        let winners = answers.filter { $0.1 == .won }.map(\.0)
        try expect(winners.count == 1, "expected one of 20 concurrent claimants to win, these did: \(winners)")
        for (candidate, answer) in answers where candidate != winners[0] {
            try expect(
                answer == .lost(winner: winners[0]),
                "claimant \(candidate) got \(answer), expected lost(winner: \"\(winners[0])\")"
            )
        }
        let winner = try await store.winner(system: system, round: round)
        try expect(winner == winners[0], "winner(system:round:) is \(winner ?? "nil"), expected \(winners[0])")
    }

    static let completionByNamedCandidates = ConformanceCheck(
        "complete: named candidates follow RoundRules (winner recorded, notWinner, alreadyCompleted)"
    ) { harness in
        let store = try await harness.makeStore()
        let system = Conformance.unique("complete-named")
        // The winner completes; non-winners are refused before and after.
        try await RoundScript(store: store, system: system, round: "winner-completes").run([
            .claim("host-a", expect: .won),
            .complete(.candidate("host-b"), expect: .notWinner),
            .complete(.candidate("host-a"), expect: .recorded),
            .complete(.candidate("host-a"), expect: .recorded),
            .complete(.candidate("host-b"), expect: .alreadyCompleted(by: "host-a")),
            .complete(.anonymous("10.0.0.9:51000"), expect: .alreadyCompleted(by: "host-a")),
            .claim("host-b", expect: .lost(winner: "host-a")),
        ])
        // No one claimed: a named candidate is not the winner.
        try await RoundScript(store: store, system: system, round: "nobody-claimed").run([
            .complete(.candidate("host-a"), expect: .notWinner),
            .claim("host-a", expect: .won),
            .complete(.candidate("host-a"), expect: .recorded),
        ])
    }

    static let completionByAnonymousCallers = ConformanceCheck(
        "complete: anonymous callers follow RoundRules (first completion recorded, others refused)"
    ) { harness in
        let store = try await harness.makeStore()
        let system = Conformance.unique("complete-anonymous")
        // Nobody claimed: the first anonymous completion is recorded anyway.
        try await RoundScript(store: store, system: system, round: "unclaimed").run([
            .complete(.anonymous("10.0.0.1:40000"), expect: .recorded),
            .complete(.anonymous("10.0.0.1:40000"), expect: .recorded),
            .complete(.anonymous("10.0.0.2:40001"), expect: .alreadyCompleted(by: "10.0.0.1:40000")),
            .complete(.candidate("host-c"), expect: .alreadyCompleted(by: "10.0.0.1:40000")),
            .claim("host-c", expect: .won),
        ])
        // Someone else won: the first anonymous completion is still recorded, and then the winner is refused.
        try await RoundScript(store: store, system: system, round: "claimed").run([
            .claim("host-a", expect: .won),
            .complete(.anonymous("10.0.0.1:40000"), expect: .recorded),
            .complete(.candidate("host-a"), expect: .alreadyCompleted(by: "10.0.0.1:40000")),
        ])
        // An anonymous completion under the winner's identity counts as the winner's.
        try await RoundScript(store: store, system: system, round: "same-identity").run([
            .claim("host-a", expect: .won),
            .complete(.anonymous("host-a"), expect: .recorded),
            .complete(.candidate("host-a"), expect: .recorded),
        ])
    }

    static let roundRetention = ConformanceCheck(
        "claim: a round record expires after its retention, and the round can be won afresh"
    ) { harness in
        let store = try await harness.makeStore()
        let system = Conformance.unique("retention")
        let round = "short"
        let kept = "kept"
        let first = try await store.claim(system: system, round: round, candidate: "host-a", retention: harness.ttl)
        try expect(first == .won, "the first claim returned \(first)")
        let long = Conformance.longTTL(harness)
        let other = try await store.claim(system: system, round: kept, candidate: "host-a", retention: long)
        try expect(other == .won, "the first claim of a second round returned \(other)")
        try await harness.elapse(harness.ttl * 2)
        let expired = try await store.winner(system: system, round: round)
        try expect(expired == nil, "winner(system:round:) after the retention is \(expired ?? "nil"), expected nil")
        let again = try await store.claim(system: system, round: round, candidate: "host-b", retention: long)
        try expect(again == .won, "a claim after the record expired returned \(again), expected won")
        let winner = try await store.winner(system: system, round: round)
        try expect(winner == "host-b", "winner(system:round:) after the new claim is \(winner ?? "nil")")
        let stillKept = try await store.claim(system: system, round: kept, candidate: "host-b", retention: long)
        try expect(
            stillKept == .lost(winner: "host-a"),
            "a round with a long retention was forgotten: a claim returned \(stillKept)"
        )
    }

    static let roundsAreIndependent = ConformanceCheck(
        "rounds: systems and rounds whose names share prefixes or separators are independent"
    ) { harness in
        let store = try await harness.makeStore()
        let base = Conformance.unique("rounds-independent")
        let pairs = [
            (base, "a/b"), (base + "/a", "b"), (base, "a"), (base + "/a/b", "c"), (base, "a/b/c"), (base + ":a", "b"),
        ]
        for (index, (system, round)) in pairs.enumerated() {
            let result = try await store.claim(
                system: system,
                round: round,
                candidate: "candidate-\(index)",
                retention: .seconds(600)
            )
            try expect(result == .won, "claim of \(system) / \(round), which no one claimed, returned \(result)")
        }
        try await store.complete(system: pairs[0].0, round: pairs[0].1, by: .candidate("candidate-0"))
        for (index, (system, round)) in pairs.enumerated() {
            let winner = try await store.winner(system: system, round: round)
            try expect(winner == "candidate-\(index)", "winner of \(system) / \(round) is \(winner ?? "nil")")
            let completion = try await store.completion(system: system, round: round)
            try expect(
                completion == (index == 0 ? "candidate-0" : nil),
                "completion of \(system) / \(round) is \(completion ?? "nil")"
            )
        }
    }
}

/// A sequence of claims and completions on one round, each with its expected outcome, checked against the
/// store and against ``RoundRules`` (the suite and the rules must agree, so the rules stay the one source).
struct RoundScript {
    enum Outcome: Equatable, CustomStringConvertible {
        case won
        case lost(winner: String)
        case recorded
        case notWinner
        case alreadyCompleted(by: String)

        var description: String {
            switch self {
            case .won: "won"
            case .lost(let winner): "lost(winner: \(winner))"
            case .recorded: "recorded"
            case .notWinner: "notWinner"
            case .alreadyCompleted(let by): "alreadyCompleted(by: \(by))"
            }
        }
    }

    enum Step {
        case claim(String, expect: Outcome)
        case complete(Completer, expect: Outcome)
    }

    let store: LeaseStore
    let system: String
    let round: String

    func run(_ steps: [Step], file: String = #fileID, line: Int = #line) async throws {
        var model: RoundRecord?
        for (number, step) in steps.enumerated() {
            let what: String
            let expected: Outcome
            let ruled: Outcome
            let actual: Outcome
            switch step {
            case .claim(let candidate, let outcome):
                what = "step \(number + 1) of round \(round): claim by \(candidate)"
                expected = outcome
                let (result, record) = RoundRules.claim(model, candidate: candidate)
                model = record
                ruled = Self.outcome(result)
                actual = Self.outcome(
                    try await store.claim(system: system, round: round, candidate: candidate, retention: .seconds(600))
                )
            case .complete(let completer, let outcome):
                what = "step \(number + 1) of round \(round): completion by \(completer)"
                expected = outcome
                switch RoundRules.complete(model, by: completer, system: system, round: round) {
                case .success(let record):
                    model = record
                    ruled = .recorded
                case .failure(let error):
                    ruled = Self.outcome(error) ?? .recorded
                }
                do {
                    try await store.complete(system: system, round: round, by: completer, retention: .seconds(600))
                    actual = .recorded
                } catch let error as BatonError {
                    guard let outcome = Self.outcome(error) else { throw error }
                    actual = outcome
                }
            }
            try expect(
                ruled == expected,
                "\(what): the suite expects \(expected) but RoundRules says \(ruled)",
                file: file,
                line: line
            )
            try expect(
                actual == expected, "\(what): the store answered \(actual), expected \(expected)",
                file: file, line: line)
        }
        let winner = try await store.winner(system: system, round: round)
        try expect(
            winner == model?.winner,
            "after round \(round) winner(system:round:) is \(winner ?? "nil"), expected \(model?.winner ?? "nil")",
            file: file,
            line: line
        )
        let completion = try await store.completion(system: system, round: round)
        try expect(
            completion == model?.completedBy,
            "after round \(round) completion(system:round:) is \(completion ?? "nil"), "
                + "expected \(model?.completedBy ?? "nil")",
            file: file,
            line: line
        )
    }

    private static func outcome(_ result: ClaimResult) -> Outcome {
        switch result {
        case .won: .won
        case .lost(let winner): .lost(winner: winner)
        }
    }

    private static func outcome(_ error: BatonError) -> Outcome? {
        switch error.code {
        case .notWinner: .notWinner
        case .alreadyCompleted: .alreadyCompleted(by: error.completedBy ?? "<completedBy not set>")
        default: nil
        }
    }
}
