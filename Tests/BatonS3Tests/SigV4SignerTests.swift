import BatonS3
import Testing

/// The signer against AWS's published SigV4 test suite (`aws-sig-v4-test-suite`): the example credentials, the
/// `service` service in `us-east-1`, 2015-08-30T12:36:00Z. S3 signs the path as it stands, so the path cases are
/// the suite's `-unnormalized` ones.
@Suite struct SigV4SignerTests {
    struct Vector: Sendable, CustomStringConvertible {
        var name: String
        var method = "GET"
        var path = "/"
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var sessionToken: String?
        var payloadHash = SigV4Signer.emptyPayloadHash
        var canonicalRequest: String?
        var signedHeaders = "host;x-amz-date"
        var signature: String
        var description: String { name }
    }

    static let date = SigV4Date(secondsSince1970: 1_440_938_160)

    static let vectors: [Vector] = [
        Vector(
            name: "get-vanilla",
            canonicalRequest: """
                GET
                /

                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        ),
        Vector(
            name: "get-vanilla-query-order-key-case",
            query: [("Param2", "value2"), ("Param1", "value1")],
            canonicalRequest: """
                GET
                /
                Param1=value1&Param2=value2
                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        ),
        Vector(
            name: "get-vanilla-query-order-encoded",
            query: [("Param-3", "Value3"), ("Param", "Value2"), ("\u{1234}", "Value1")],
            signature: "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"
        ),
        Vector(
            name: "get-vanilla-query-unreserved",
            query: [
                (
                    "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                    "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                )
            ],
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"
        ),
        Vector(
            name: "get-vanilla-utf8-query",
            query: [("\u{1234}", "bar")],
            signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"
        ),
        Vector(
            name: "get-unreserved",
            path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"
        ),
        Vector(
            name: "get-utf8",
            path: "/\u{1234}",
            canonicalRequest: """
                GET
                /%E1%88%B4

                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
        ),
        Vector(
            name: "get-space-unnormalized",
            path: "/example space/",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"
        ),
        Vector(
            name: "get-slashes-unnormalized",
            path: "//example//",
            signature: "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5"
        ),
        Vector(
            name: "get-relative-unnormalized",
            path: "/example/..",
            signature: "eca7ead57bb5aa5c8e28007acd4ff04e1ff9a0ff3b237ec1554a184887ff9282"
        ),
        Vector(
            name: "get-header-key-duplicate",
            headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
            signedHeaders: "host;my-header1;x-amz-date",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"
        ),
        Vector(
            name: "get-header-value-order",
            headers: [
                ("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2"),
            ],
            signedHeaders: "host;my-header1;x-amz-date",
            signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"
        ),
        Vector(
            name: "get-header-value-trim",
            headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
            canonicalRequest: """
                GET
                /

                host:example.amazonaws.com
                my-header1:value1
                my-header2:"a b c"
                x-amz-date:20150830T123600Z

                host;my-header1;my-header2;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            signedHeaders: "host;my-header1;my-header2;x-amz-date",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
        ),
        Vector(
            name: "get-vanilla-with-session-token",
            sessionToken: "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
            signedHeaders: "host;x-amz-date;x-amz-security-token",
            signature: "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        ),
        Vector(
            name: "post-vanilla",
            method: "POST",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        ),
        Vector(
            name: "post-vanilla-query",
            method: "POST",
            query: [("Param1", "value1")],
            signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
        ),
        Vector(
            name: "post-header-key-sort",
            method: "POST",
            headers: [("My-Header1", "value1")],
            signedHeaders: "host;my-header1;x-amz-date",
            signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"
        ),
        Vector(
            name: "post-header-value-case",
            method: "POST",
            headers: [("My-Header1", "VALUE1")],
            signedHeaders: "host;my-header1;x-amz-date",
            signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"
        ),
        Vector(
            name: "post-x-www-form-urlencoded",
            method: "POST",
            headers: [
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Content-Length", "13"),
                ("x-amz-content-sha256", "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"),
            ],
            payloadHash: "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            signedHeaders: "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
            signature: "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
        ),
    ]

    static func signer(sessionToken: String? = nil) -> SigV4Signer {
        SigV4Signer(
            credentials: S3Credentials(
                accessKeyID: "AKIDEXAMPLE",
                secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                sessionToken: sessionToken
            ),
            region: "us-east-1",
            service: "service"
        )
    }

    @Test(arguments: vectors)
    func signsAsTheSuiteStates(_ vector: Vector) {
        let signed = Self.signer(sessionToken: vector.sessionToken).sign(
            SigV4Signer.Request(
                method: vector.method,
                host: "example.amazonaws.com",
                path: vector.path,
                query: vector.query,
                headers: vector.headers,
                payloadHash: vector.payloadHash
            ),
            at: Self.date
        )
        if let canonicalRequest = vector.canonicalRequest {
            #expect(signed.canonicalRequest == canonicalRequest)
        }
        #expect(signed.signature == vector.signature)
        #expect(
            signed.authorization
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                + "SignedHeaders=\(vector.signedHeaders), Signature=\(vector.signature)"
        )
        let sent = Dictionary(signed.headers.map { ($0.name.lowercased(), $0.value) }) { first, _ in first }
        #expect(sent["x-amz-date"] == "20150830T123600Z")
        #expect(sent["host"] == "example.amazonaws.com")
        #expect(sent["x-amz-security-token"] == vector.sessionToken)
    }

    @Test func stringToSignOfGetVanilla() {
        let signed = Self.signer().sign(
            SigV4Signer.Request(
                method: "GET", host: "example.amazonaws.com", path: "/", payloadHash: SigV4Signer.emptyPayloadHash),
            at: Self.date
        )
        #expect(
            signed.stringToSign
                == """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63
                """
        )
    }

    @Test(arguments: [
        (Int64(0), "19700101T000000Z"),
        (1_440_938_160, "20150830T123600Z"),
        (951_782_400, "20000229T000000Z"),
        (4_107_542_399, "21000228T235959Z"),
        (1_796_083_200, "20261201T000000Z"),
    ])
    func formatsUTCTimes(_ seconds: Int64, _ expected: String) {
        #expect(SigV4Date(secondsSince1970: seconds).timestamp == expected)
        #expect(SigV4Date(secondsSince1970: seconds).day == String(expected.prefix(8)))
    }

    @Test func payloadHashIsSHA256() {
        #expect(
            SigV4Signer.payloadHash(Array("Param1=value1".utf8))
                == "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e")
        #expect(SigV4Signer.payloadHash([UInt8]()) == SigV4Signer.emptyPayloadHash)
    }

    @Test func credentialsNeverShowTheSecret() {
        let credentials = S3Credentials(
            accessKeyID: "AKIDEXAMPLE", secretAccessKey: "s3cr3t-value", sessionToken: "t0ken-value")
        for text in [credentials.description, String(reflecting: credentials), "\(credentials)"] {
            #expect(text.contains("AKIDEXAMPLE"))
            #expect(!text.contains("s3cr3t-value"))
            #expect(!text.contains("t0ken-value"))
        }
        var dumped = ""
        dump(credentials, to: &dumped)
        #expect(!dumped.contains("s3cr3t-value"))
    }
}
