/// One line of JSON for `baton campaign`'s event stream: an object with its keys in byte order.
///
/// Written by hand rather than with `JSONSerialization`, whose sorted keys go through a locale's collation (on
/// Linux, ICU's) for every line: with fifty candidates on one host, each prints a line at every change of leader.
struct JSONLine {
    /// A value of a field.
    enum Value {
        case string(String)
        case integer(Int64)
    }

    /// The fields, in any order; a key given twice keeps its last value.
    var fields: [String: Value]

    /// The object on one line, keys in byte order, ending with a newline.
    var text: String {
        var out = "{"
        let keys = fields.keys.sorted { Array($0.utf8).lexicographicallyPrecedes($1.utf8) }
        for (index, key) in keys.enumerated() {
            if index > 0 { out += "," }
            Self.append(string: key, to: &out)
            out += ":"
            switch fields[key] {
            case .string(let text): Self.append(string: text, to: &out)
            case .integer(let number): out += String(number)
            case nil: out += "null"
            }
        }
        out += "}\n"
        return out
    }

    /// Appends `text` as a JSON string: quotes, backslashes and control characters escaped, the rest as it is.
    static func append(string text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
