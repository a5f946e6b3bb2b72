import Foundation
import Testing

@testable import baton

/// `baton campaign`'s event lines: valid JSON whatever the strings hold, keys in byte order.
@Suite struct JSONLineTests {
    @Test func keysInByteOrderAndIntegersAsNumbers() {
        let line = JSONLine(fields: ["token": .integer(-7), "event": .string("elected"), "Zed": .integer(0)])
        #expect(line.text == #"{"Zed":0,"event":"elected","token":-7}"# + "\n")
    }

    @Test func stringsAreEscapedAndReadBackAsWritten() throws {
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} é 🚀 \u{2028}"
        let text = JSONLine(fields: ["holder": .string(awkward), "event": .string("following")]).text
        #expect(text.hasSuffix("}\n"))
        #expect(!text.dropLast().contains("\n"), "one line")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String])
        #expect(object == ["holder": awkward, "event": "following"])
    }
}
