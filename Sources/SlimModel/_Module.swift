import SlimIO
