// swift-tools-version:6.2
// libFuzzer harnesses for the untrusted-input paths of VariantCore. Built by `fuzz/run`, not by the main package:
//   swift build -c release --scratch-path ../.build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
// Every Swift module of the graph (VariantCore included) gets coverage instrumentation and ASan; libFuzzer
// provides the driver: the executables have no Swift `main` (hence -parse-as-library), and the small C target
// FuzzerEntry supplies the `<module>_main` symbol that SwiftPM aliases `main` to on Linux.
import PackageDescription

let package = Package(
    name: "variantd-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "variantd", path: "..")
    ],
    targets: [
        // libFuzzer's driver as the executables' entry point (SwiftPM renames `main` on Linux).
        .target(name: "FuzzerEntry"),
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "VariantCore", package: "variantd")]
        ),
        .executableTarget(
            name: "fuzz-request",
            dependencies: ["FuzzerEntry", "FuzzSupport", .product(name: "VariantCore", package: "variantd")]
        ),
        .executableTarget(
            name: "fuzz-config",
            dependencies: ["FuzzerEntry", "FuzzSupport", .product(name: "VariantCore", package: "variantd")]
        ),
        .executableTarget(
            name: "fuzz-render",
            dependencies: ["FuzzerEntry", "FuzzSupport", .product(name: "VariantCore", package: "variantd")]
        ),
        .executableTarget(
            name: "fuzz-json",
            dependencies: ["FuzzerEntry", "FuzzSupport", .product(name: "VariantCore", package: "variantd")]
        ),
    ]
)
