import CSlimCUDA
import SlimKernels
import SlimRuntime
import XCTest

@testable import SlimCUDA

/// Host-side decisions of the GPU backend that need no GPU.
final class HostSideTests: XCTestCase {
    func testDenseWeightsUseHalvesOnlyWhenExact() {
        let exact: [Float] = [0, -0, 1, -2.5, 0.099975586, 65504, Kernels.Reference.f16ToF32(1)]  // last: smallest subnormal
        guard case .f16(let halves) = CUDADenseWeights(exactly: exact) else { return XCTFail("fp16-exact values kept as fp32") }
        XCTAssertEqual(halves.map { Kernels.Reference.f16ToF32($0) }, exact)
        for inexact: Float in [0.1, 1e-8, 70000, 1 + 1 / 4096] {
            guard case .f32(let values) = CUDADenseWeights(exactly: exact + [inexact]) else {
                return XCTFail("\(inexact) is not an fp16 number but was converted")
            }
            XCTAssertEqual(values, exact + [inexact])
        }
    }

    /// The Swift element types are the C API's (slim_cuda.h), with their sizes.
    func testWeightTypesMatchTheCAPI() {
        XCTAssertEqual(CUDAWeightType.f32.rawValue, Int32(SLIM_CUDA_F32))
        XCTAssertEqual(CUDAWeightType.f16.rawValue, Int32(SLIM_CUDA_F16))
        XCTAssertEqual(CUDAWeightType.bf16.rawValue, Int32(SLIM_CUDA_BF16))
        XCTAssertEqual([CUDAWeightType.f32, .f16, .bf16].map(\.byteSize), [4, 2, 2])
        XCTAssertEqual(KVCacheType.allCases.map(\.dtype), [Int32(SLIM_CUDA_F32), Int32(SLIM_CUDA_F16), Int32(SLIM_CUDA_BF16)])
        XCTAssertEqual(KVCacheType.allCases.map(\.byteSize), [4, 2, 2])
        XCTAssertEqual(KVCacheType.allCases.map(\.elementType.byteSize), KVCacheType.allCases.map(\.byteSize),
                       "the GPU cache holds what the CPU cache holds")
        let bf16 = CUDADenseWeights.bf16([0x3F80, 0xC020])
        XCTAssertEqual(bf16.type, .bf16)
        XCTAssertEqual(bf16.count, 2)
        XCTAssertEqual(bf16.withUnsafeBytes { Array($0) }, [0x80, 0x3F, 0x20, 0xC0])
    }

    func testSyntheticLlama7BShape() {
        let config = SyntheticModel.llama7b.config
        XCTAssertEqual(config.hiddenSize, 4096)
        XCTAssertEqual(config.intermediateSize, 11008)
        XCTAssertEqual(config.numHiddenLayers, 32)
        XCTAssertEqual(config.headDim, 128)
        XCTAssertEqual(config.parameterCount, 6_738_415_616)  // LLaMA-7B
        // SliM-LLM-like mixes: mean exactly N, widths N − 1 … N + 1, for every linear's group count.
        for (groups, bits) in [(32, 2), (86, 2), (32, 3), (86, 4)] {
            let mix = SyntheticModel.bitMix(groups: groups, bits: bits, seed: UInt64(groups))
            XCTAssertEqual(mix.reduce(0) { $0 + Int($1) }, groups * bits)
            XCTAssertTrue(mix.allSatisfy { abs(Int($0) - bits) <= 1 })
            XCTAssertEqual(mix.filter { Int($0) == bits - 1 }.count, groups / 4)
        }
    }
}
