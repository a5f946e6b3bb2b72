import Baton
import Testing

@testable import baton

@Suite("baton: output and exit statuses")
struct CommandOutputTests {
    @Test("a leader is one line with token, time left and metadata")
    func leaderLine() {
        let leader = LeaderInfo(
            holder: "host-a",
            token: 7,
            metadata: "http://10.0.0.5:8080",
            ttl: .seconds(10),
            remaining: .milliseconds(9998)
        )
        #expect(LeaderReport.line(leader) == #"host-a (token 7, 9.998s left, metadata "http://10.0.0.5:8080")"#)
        #expect(LeaderReport.line(LeaderInfo(holder: "b", token: 1)) == "b (token 1)")
        #expect(
            LeaderReport.line(LeaderInfo(holder: "b", token: 2, metadata: "x\n\"y\""))
                == #"b (token 2, metadata "x\n\"y\"")"#)
    }

    @Test("a leader in JSON has holder, token, metadata and remaining_ms")
    func leaderJSON() throws {
        let leader = LeaderInfo(holder: "host-a", token: 7, metadata: "http://h:1/", remaining: .milliseconds(1500))
        #expect(
            try LeaderReport.json(leader)
                == #"{"holder":"host-a","metadata":"http://h:1/","remaining_ms":1500,"token":7}"#
        )
        #expect(
            try LeaderReport.json(LeaderInfo(holder: "b\"", token: 1))
                == #"{"holder":"b\"","metadata":null,"remaining_ms":null,"token":1}"#
        )
    }

    @Test("time left is printed in seconds with milliseconds")
    func seconds() {
        #expect(LeaderReport.seconds(.zero) == "0.000s")
        #expect(LeaderReport.seconds(.milliseconds(5)) == "0.005s")
        #expect(LeaderReport.seconds(.milliseconds(61_250)) == "61.250s")
        #expect(LeaderReport.seconds(.milliseconds(-3)) == "0.000s")
    }

    @Test("errors map to exit statuses")
    func statuses() {
        #expect(CommandOutcome.status(for: BatonError.invalidArgument("x")) == 2)
        #expect(CommandOutcome.status(for: BatonError.notWinner(candidate: "a", system: "s", round: "r")) == 1)
        #expect(CommandOutcome.status(for: BatonError.alreadyCompleted(by: "a", system: "s", round: "r")) == 1)
        #expect(CommandOutcome.status(for: BatonError.storeUnavailable("down")) == 3)
        #expect(CommandOutcome.status(for: BatonError.timeout("slow")) == 3)
        #expect(CommandOutcome.status(for: BatonError.unauthorized("no")) == 3)
        #expect(CommandOutcome.status(for: CancellationError()) == 3)
        #expect(CommandOutcome.message(for: BatonError.storeUnavailable("down")) == "the store is unavailable: down")
        #expect(CommandOutcome.message(for: BatonError.invalidArgument("bad")) == "bad")
    }

    @Test("the store is --store, else BATON_STORE, else sqlite:baton.db")
    func storeResolution() throws {
        let resolve = { (option: String?, environment: [String: String]) throws(BatonError) in
            try StoreOptions.storeURL(option: option, file: nil, environment: environment)
        }
        #expect(try resolve(nil, [:]) == StoreURL("sqlite:baton.db"))
        #expect(try resolve(nil, ["BATON_STORE": ""]) == StoreURL("sqlite:baton.db"))
        #expect(try resolve(nil, ["BATON_STORE": "memory:"]).scheme == "memory")
        let unknown = #expect(throws: BatonError.self) { try resolve("mysql://h", [:]) }
        #expect(unknown?.message.hasPrefix("--store: unknown store URL scheme") == true)
        #expect(try resolve("sqlite:/tmp/x.db", ["BATON_STORE": "memory:"]).path == "/tmp/x.db")
        let error = #expect(throws: BatonError.self) { try resolve("redis://u:sekret@h:x", [:]) }
        #expect(error?.message.hasPrefix("--store: ") == true)
        #expect(error?.message.contains("sekret") == false)
    }

    @Test("duration options name the option in errors")
    func durationOptions() throws {
        #expect(try parseDurationOption("7d", option: "--retention") == .seconds(7 * 86_400))
        let bad = #expect(throws: BatonError.self) { try parseDurationOption("7 days", option: "--retention") }
        #expect(bad?.message.hasPrefix("--retention: invalid duration") == true)
        let zero = #expect(throws: BatonError.self) { try parseDurationOption("0s", option: "--retention") }
        #expect(zero?.message.hasPrefix("--retention must be at least 1 ms") == true)
    }

    @Test("the default candidate is this host's name")
    func defaultCandidate() throws {
        let host = try #require(Candidate.hostName())
        #expect(try Candidate.resolve(nil) == host)
        #expect(try Candidate.resolve("worker-1") == "worker-1")
        #expect(throws: BatonError.self) { try Candidate.resolve("") }
    }
}

@Suite("baton list: output")
struct ListOutputTests {
    @Test("leases print as a table with a header, - where unknown")
    func leaseTable() {
        let listing = LeaseListing(
            leases: [
                HeldLease(
                    key: "jobs/mailer",
                    leader: LeaderInfo(
                        holder: "host-a", token: 7, metadata: "http://h:1/", remaining: .milliseconds(9998))
                ),
                HeldLease(key: "jobs/x", leader: LeaderInfo(holder: "b", token: 12)),
            ],
            isTruncated: false
        )
        #expect(
            ListReport.table(listing)
                == """
                KEY          HOLDER  TOKEN  LEFT    METADATA
                jobs/mailer  host-a  7      9.998s  "http://h:1/"
                jobs/x       b       12     -       -
                """
        )
        #expect(ListReport.table(LeaseListing(leases: [], isTruncated: false)) == "no leases held")
    }

    @Test("leases in JSON carry every field, null where unknown")
    func leaseJSON() throws {
        let listing = LeaseListing(
            leases: [
                HeldLease(
                    key: "k",
                    leader: LeaderInfo(holder: "h", token: 3, ttl: .seconds(10), remaining: .milliseconds(1500)))
            ],
            isTruncated: true
        )
        #expect(
            try ListReport.json(listing, prefix: "")
                == #"{"leases":[{"holder":"h","key":"k","metadata":null,"remaining_ms":1500,"token":3,"ttl_ms":10000}],"#
                + #""prefix":"","truncated":true}"#
        )
    }

    @Test("rounds print as a table and as JSON")
    func rounds() throws {
        let listing = RoundListing(
            rounds: [
                RoundSummary(round: "2026-01-02", winner: "host-b"),
                RoundSummary(round: "2026-01-01", winner: "host-a", completedBy: "host-a"),
            ],
            isTruncated: false
        )
        #expect(
            ListReport.table(listing)
                == """
                ROUND       WINNER  COMPLETED BY
                2026-01-02  host-b  -
                2026-01-01  host-a  host-a
                """
        )
        #expect(
            try ListReport.json(listing, system: "nightly")
                == #"{"rounds":[{"completed_by":null,"round":"2026-01-02","winner":"host-b"},"#
                + #"{"completed_by":"host-a","round":"2026-01-01","winner":"host-a"}],"system":"nightly","truncated":false}"#
        )
        #expect(ListReport.table(RoundListing(rounds: [], isTruncated: false)) == "no rounds kept")
    }

    @Test("a waiting holder's line names the slots' holders and counts the free ones")
    func slotHoldersLine() {
        let a = LeaderInfo(holder: "a", token: 5)
        let b = LeaderInfo(holder: "b", token: 7)
        #expect(
            BatonCommand.Run.slotHolders([a, b], key: "k")
                == "waiting: the slots of k are held by a (slot 0, token 5), b (slot 1, token 7)")
        #expect(
            BatonCommand.Run.slotHolders([nil, b, nil], key: "k")
                == "waiting: the slots of k are held by b (slot 1, token 7); 2 free")
        #expect(BatonCommand.Run.slotHolders([nil, nil], key: "k") == nil)
    }
}
