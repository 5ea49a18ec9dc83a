// The local stack's DynamoDB: dynalite in memory on 127.0.0.1. Prints {"port": N} once listening (argv[2] = port,
// 0 = any free one), and exits when its parent closes stdin, so a killed `make run` leaves nothing behind.
'use strict'
const dynalite = require('dynalite')

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
})
const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.resume()
