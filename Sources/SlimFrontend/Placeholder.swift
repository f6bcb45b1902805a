public enum SlimQuantCommand { public static func main() {} }
