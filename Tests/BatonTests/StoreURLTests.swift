import Baton
import Testing

@Suite("StoreURL")
struct StoreURLTests {
    // MARK: Forms

    @Test("memory:")
    func memory() throws {
        #expect(try StoreURL("memory://").description == "memory://")
        for text in ["memory:", "MEMORY:", "  memory:\n"] {
            let url = try StoreURL(text)
            #expect(url.scheme == "memory")
            #expect(url.hosts.isEmpty)
            #expect(url.path.isEmpty)
            #expect(url.description == "memory:")
        }
    }

    @Test(
        "sqlite:PATH, relative or absolute",
        arguments: [
            ("sqlite:baton.db", "baton.db"),
            ("sqlite:./data/baton.db", "./data/baton.db"),
            ("sqlite:../baton.db", "../baton.db"),
            ("sqlite:/var/lib/baton/baton.db", "/var/lib/baton/baton.db"),
            ("sqlite:///var/lib/baton/baton.db", "/var/lib/baton/baton.db"),
            ("sqlite:my%20file.db", "my file.db"),
            ("sqlite:dir with space/b.db", "dir with space/b.db"),
            ("SQLite:baton.db", "baton.db"),
        ]
    )
    func sqlite(text: String, path: String) throws {
        let url = try StoreURL(text)
        #expect(url.scheme == "sqlite")
        #expect(url.path == path)
        #expect(url.hosts.isEmpty)
        #expect(url.user == nil && url.password == nil)
        #expect(try StoreURL(url.description) == url)
    }

    @Test("redis://host:port")
    func redisPlain() throws {
        let url = try StoreURL("redis://127.0.0.1:6379")
        #expect(url.scheme == "redis")
        #expect(url.hosts == [StoreURL.Host("127.0.0.1", port: 6379)])
        #expect(url.user == nil && url.password == nil)
        #expect(url.path.isEmpty)
        #expect(url.description == "redis://127.0.0.1:6379")
    }

    @Test("redis://user:pass@host:port/db")
    func redisWithCredentialsAndDatabase() throws {
        let url = try StoreURL("redis://baton:sekret@cache.internal:6380/2")
        #expect(url.user == "baton")
        #expect(url.password == "sekret")
        #expect(url.hosts == [StoreURL.Host("cache.internal", port: 6380)])
        #expect(url.path == "/2")
        #expect(url.description == "redis://baton:***@cache.internal:6380/2")
    }

    @Test("redis://:pass@host has a password but no user")
    func redisPasswordOnly() throws {
        let url = try StoreURL("redis://:sekret@localhost")
        #expect(url.user == nil)
        #expect(url.password == "sekret")
        #expect(url.hosts == [StoreURL.Host("localhost")])
        #expect(url.description == "redis://:***@localhost")
    }

    @Test("rediss:// asks for TLS")
    func rediss() throws {
        let url = try StoreURL("rediss://user:sekret@redis.example.com:6380/0")
        #expect(url.scheme == "rediss")
        #expect(url.description == "rediss://user:***@redis.example.com:6380/0")
    }

    @Test("redis://h1:p1,h2:p2,h3:p3 names a Redlock quorum")
    func redisQuorum() throws {
        let url = try StoreURL("redis://:sekret@10.0.0.1:6379,10.0.0.2:6380,redis-3")
        #expect(
            url.hosts == [
                StoreURL.Host("10.0.0.1", port: 6379), StoreURL.Host("10.0.0.2", port: 6380), StoreURL.Host("redis-3"),
            ]
        )
        #expect(url.password == "sekret")
        #expect(url.description == "redis://:***@10.0.0.1:6379,10.0.0.2:6380,redis-3")
    }

    @Test("etcd:// and etcds:// with one or several hosts")
    func etcd() throws {
        let one = try StoreURL("etcd://127.0.0.1:2379")
        #expect(one.hosts == [StoreURL.Host("127.0.0.1", port: 2379)])

        let three = try StoreURL("etcds://root:sekret@e1:2379,e2:2379,e3:2379")
        #expect(three.scheme == "etcds")
        #expect(three.hosts.map(\.name) == ["e1", "e2", "e3"])
        #expect(three.hosts.allSatisfy { $0.port == 2379 })
        #expect(three.user == "root")
        #expect(three.password == "sekret")
        #expect(three.description == "etcds://root:***@e1:2379,e2:2379,e3:2379")
    }

    @Test("postgres:// and postgresql:// with a database and sslmode")
    func postgres() throws {
        for scheme in ["postgres", "postgresql"] {
            let url = try StoreURL("\(scheme)://baton:sekret@db.internal:5432/elections?sslmode=require")
            #expect(url.scheme == scheme)
            #expect(url.user == "baton")
            #expect(url.password == "sekret")
            #expect(url.hosts == [StoreURL.Host("db.internal", port: 5432)])
            #expect(url.path == "/elections")
            #expect(url.queryItems == [StoreURL.QueryItem(name: "sslmode", value: "require")])
            #expect(url.queryValue("sslmode") == "require")
            #expect(url.queryValue("missing") == nil)
            #expect(url.description == "\(scheme)://baton:***@db.internal:5432/elections?sslmode=require")
        }
    }

    @Test("s3://bucket/prefix/?endpoint=URL&region=R")
    func s3() throws {
        let url = try StoreURL("s3://baton-locks/prod/elections/?endpoint=http://127.0.0.1:9000&region=eu-west-1")
        #expect(url.hosts == [StoreURL.Host("baton-locks")])
        #expect(url.path == "/prod/elections/")
        #expect(url.queryValue("endpoint") == "http://127.0.0.1:9000")
        #expect(url.queryValue("region") == "eu-west-1")
        #expect(url.description == "s3://baton-locks/prod/elections/?endpoint=http://127.0.0.1:9000&region=eu-west-1")

        let bare = try StoreURL("s3://bucket")
        #expect(bare.queryItems.isEmpty)
    }

    @Test("IPv6 addresses go in brackets")
    func ipv6() throws {
        let url = try StoreURL("redis://[::1]:6379,[fe80::1]")
        #expect(url.hosts == [StoreURL.Host("::1", port: 6379), StoreURL.Host("fe80::1")])
        #expect(url.description == "redis://[::1]:6379,[fe80::1]")
    }

    @Test("user, password, path and query items are percent-decoded")
    func percentDecoding() throws {
        let url = try StoreURL(
            "postgres://b%40ton:p%40ss%2Fw%3Ard%25+x@h:5432/my%20db?application_name=baton%20cli&flag")
        #expect(url.user == "b@ton")
        #expect(url.password == "p@ss/w:rd%+x")
        #expect(url.path == "/my db")
        #expect(
            url.queryItems == [
                StoreURL.QueryItem(name: "application_name", value: "baton cli"),
                StoreURL.QueryItem(name: "flag", value: ""),
            ]
        )
        #expect(url.description == "postgres://b%40ton:***@h:5432/my%20db?application_name=baton%20cli&flag=")
    }

    @Test(
        "the description of a URL without secrets parses back to the same URL",
        arguments: [
            "memory:", "sqlite:baton.db", "sqlite:/tmp/a b/c%25.db", "redis://h:1", "redis://u@h:1/3",
            "rediss://a:1,b:2,c:3", "etcd://[::1]:2379", "etcds://e1:2379,e2:2379",
            "postgresql://u@h/db?sslmode=disable&connect_timeout=5",
            "s3://b/p/?endpoint=http://127.0.0.1:9000&region=r",
        ]
    )
    func roundTrip(text: String) throws {
        let url = try StoreURL(text)
        #expect(try StoreURL(url.description) == url)
    }

    // MARK: Redaction

    @Test("the password is never printed")
    func redaction() throws {
        let url = try StoreURL("redis://admin:sekret@h1:6379,h2:6379/1")
        #expect(!url.description.contains("sekret"))
        #expect(!String(reflecting: url).contains("sekret"))
        #expect(!"\(url)".contains("sekret"))
        var dumped = ""
        dump(url, to: &dumped)
        #expect(!dumped.contains("sekret"))
        #expect(dumped.contains("***"))
    }

    @Test("query values whose names look secret are redacted")
    func secretQueryValues() throws {
        let url = try StoreURL("postgres://u@h/db?password=sekret&sslmode=verify-full&sslkey=/k.pem&token=sekret")
        #expect(url.queryValue("password") == "sekret")
        #expect(url.description == "postgres://u@h/db?password=***&sslmode=verify-full&sslkey=***&token=***")
        var dumped = ""
        dump(url, to: &dumped)
        #expect(!dumped.contains("sekret"))
    }

    // MARK: Bad input

    @Test(
        "malformed URLs are an invalidArgument error that says what is wrong and never shows the password",
        arguments: [
            ("", "starts with a scheme"),
            ("baton.db", "starts with a scheme"),
            ("//sekret@h", "starts with a scheme"),
            ("1redis://h", "starts with a scheme"),
            ("sqlite:a%zz.db", #"the path "a%zz.db" has a malformed percent-escape"#),
            ("redis://h:0", #"bad port "0""#),
            ("redis://u:sekret@h:65536", #"bad port "65536""#),
            ("redis://h:", #"bad port """#),
            ("redis://h:-1", #"bad port "-1""#),
            ("redis://h:63a", #"bad port "63a""#),
            ("redis://h:000000006379", "bad port"),
            ("redis://a:1,,b:2", "host 2 of the redis: store URL is missing"),
            ("redis://a:1,", "host 2 of the redis: store URL is missing"),
            ("redis://:sekret@:6379", "has a port but no host name"),
            ("redis://bad_host!:1", "not a valid host name"),
            ("redis://h x:1", "not a valid host name"),
            ("redis://[::1:6379", "lacks its closing ]"),
            ("redis://[::1]6379", "has text after its closing ]"),
            ("redis://[zz]:1", "not a valid IPv6 address"),
            ("postgres://u:sek%ZZret@h/db", "the password has a malformed percent-escape"),
            ("postgres://u:sek%C3ret@h/db", "the password is not UTF-8"),
            ("postgres://u:sekret/x@h/db", "percent-encode them as %2F, %3F, %40"),
            ("redis://u:6379?sekret@h", "percent-encode them as %2F, %3F, %40"),
            ("redis://u:6379/sekret@h", "percent-encode them as %2F, %3F, %40"),
            ("postgres://u@h/db?=x", "query item without a name"),
            ("postgres://u@h/db?password=sek%Gret", "the value of query item password has a malformed percent-escape"),
        ]
    )
    func badInput(text: String, expected: String) {
        let error = #expect(throws: BatonError.self) { try StoreURL(text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "no error")")
        #expect(error?.message.contains("sek") == false, "\(error?.message ?? "")")
    }
}
