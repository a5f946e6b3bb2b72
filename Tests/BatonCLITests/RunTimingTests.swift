import Baton
import Foundation
import Testing

@testable import baton

@Suite("baton run: timing and command lookup")
struct RunTimingTests {
    @Test("defaults scale with the ttl and keep SIGKILL a margin before expiry")
    func defaults() throws {
        let ten = try RunTiming.resolve(ttl: .seconds(10), grace: nil, renewInterval: nil)
        #expect(ten.margin == .seconds(1))
        #expect(ten.grace == .seconds(2))
        #expect(ten.renewInterval == .seconds(10) / 3)
        #expect(ten.electorMargin == .seconds(3))

        let one = try RunTiming.resolve(ttl: .seconds(1), grace: nil, renewInterval: nil)
        #expect(one.margin == .milliseconds(100))
        #expect(one.grace == .milliseconds(200))
        #expect(one.window == .milliseconds(700))
        #expect(one.renewInterval == .seconds(1) / 3)

        let short = try RunTiming.resolve(ttl: .milliseconds(300), grace: nil, renewInterval: nil)
        #expect(short.grace == .milliseconds(100))
        #expect(short.renewInterval == .milliseconds(50))

        for ttl in [Duration.milliseconds(300), .seconds(1), .seconds(10), .seconds(600)] {
            let timing = try RunTiming.resolve(ttl: ttl, grace: nil, renewInterval: nil)
            #expect(timing.electorMargin + timing.window == ttl)
            #expect(timing.renewInterval < timing.window)
            let configuration = ElectorConfiguration(
                ttl: ttl, renewInterval: timing.renewInterval, safetyMargin: timing.electorMargin)
            #expect(throws: Never.self) { try configuration.validate() }
        }
    }

    @Test("a grace or renew interval that does not fit is refused with the values")
    func refused() {
        let grace = #expect(throws: BatonError.self) {
            try RunTiming.resolve(ttl: .seconds(2), grace: .seconds(2), renewInterval: nil)
        }
        #expect(grace?.code == .invalidArgument)
        #expect(grace?.message.hasPrefix("--grace 2s does not fit in --ttl 2s") == true)
        #expect(grace?.message.contains("(2s + 200ms)") == true)

        let renew = #expect(throws: BatonError.self) {
            try RunTiming.resolve(ttl: .seconds(10), grace: .seconds(5), renewInterval: .seconds(4))
        }
        #expect(renew?.message.hasPrefix("--renew-interval 4s must be shorter than ttl − margin − grace") == true)
        #expect(renew?.message.contains("10s − 1s − 5s = 4s") == true)

        #expect(throws: BatonError.self) {
            try RunTiming.resolve(ttl: .milliseconds(200), grace: nil, renewInterval: nil)
        }
    }

    @Test("durations are written as the options take them")
    func format() {
        #expect(RunTiming.format(.seconds(10)) == "10s")
        #expect(RunTiming.format(.milliseconds(250)) == "250ms")
        #expect(RunTiming.format(.milliseconds(1500)) == "1.5s")
        #expect(RunTiming.format(.seconds(10) / 3) == "3.333s")
        #expect(RunTiming.format(.milliseconds(2050)) == "2.05s")
    }

    @Test("a command is looked up in PATH unless it contains a slash")
    func candidatePaths() {
        #expect(ChildProcess.candidatePaths(for: "./run.sh", searchPath: "/bin") == ["./run.sh"])
        #expect(ChildProcess.candidatePaths(for: "sh", searchPath: "/usr/bin:/bin") == ["/usr/bin/sh", "/bin/sh"])
        #expect(ChildProcess.candidatePaths(for: "x", searchPath: "/a::/b") == ["/a/x", "./x", "/b/x"])
        #expect(ChildProcess.candidatePaths(for: "x", searchPath: nil).count == 3)
    }

    @Test("watch lines carry the time and the leader, or no leader")
    func watchLines() throws {
        let date = Date(timeIntervalSince1970: 1_795_420_801.25)
        let leader = LeaderInfo(holder: "host-a", token: 7, remaining: .milliseconds(9998))
        #expect(
            BatonCommand.Watch.line(leader, json: false, at: date)
                == "2026-11-23T08:00:01.250Z host-a (token 7, 9.998s left)")
        #expect(BatonCommand.Watch.line(nil, json: false, at: date) == "2026-11-23T08:00:01.250Z no leader")
        #expect(
            BatonCommand.Watch.line(leader, json: true, at: date)
                == #"{"at":"2026-11-23T08:00:01.250Z","leader":{"holder":"host-a","metadata":null,"remaining_ms":9998,"token":7}}"#
        )
        #expect(
            BatonCommand.Watch.line(nil, json: true, at: date) == #"{"at":"2026-11-23T08:00:01.250Z","leader":null}"#)
        #expect(BatonCommand.Watch.same(nil, nil))
        #expect(!BatonCommand.Watch.same(nil, leader))
        var renewed = leader
        renewed.remaining = .milliseconds(5)
        #expect(BatonCommand.Watch.same(leader, renewed))
    }
}
