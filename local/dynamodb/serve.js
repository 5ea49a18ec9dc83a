// The local stack's DynamoDB: dynalite in memory on 127.0.0.1. Prints {"port": N} once listening (argv[2] = port,
// 0 = any free one), and exits when its parent closes stdin, so a killed `make run` leaves nothing behind.
'use strict'
const http = require('http')
const dynalite = require('dynalite')

const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
const TARGET = 'DynamoDB_20120810.'

// dynalite has no TransactWriteItems (the rollups' writes, docs/DESIGN.md "Rollups"). This stands in for it:
// transactions run one at a time; each action is applied as its single-item call (Update -> UpdateItem, Put ->
// PutItem, Delete -> DeleteItem) after the items were read, and when one is refused every action applied before it
// is undone (the items put back as read) and the answer is DynamoDB's TransactionCanceledException with its
// CancellationReasons. A plain write landing on the same items mid-transaction is not isolated: local only.
const dynaliteHandler = server.listeners('request')[0]
server.removeAllListeners('request')
server.on('request', (req, res) => {
  if (req.headers['x-amz-target'] !== TARGET + 'TransactWriteItems') return dynaliteHandler(req, res)
  const chunks = []
  req.on('data', (chunk) => chunks.push(chunk))
  req.on('end', () => {
    queue = queue.then(() => transact(req.headers, JSON.parse(Buffer.concat(chunks).toString())))
      .then(([status, body]) => answer(res, status, body), (err) => answer(res, 500, { __type: 'InternalFailure', message: String(err) }))
  })
})
let queue = Promise.resolve()

function answer (res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/x-amz-json-1.0', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

function call (headers, operation, body) {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body)
    const request = http.request({
      host: '127.0.0.1',
      port: server.address().port,
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.0',
        'X-Amz-Target': TARGET + operation,
        Authorization: headers.authorization,
        'X-Amz-Date': headers['x-amz-date'],
        'Content-Length': Buffer.byteLength(text),
      },
    }, (response) => {
      const chunks = []
      response.on('data', (chunk) => chunks.push(chunk))
      response.on('end', () => resolve([response.statusCode, JSON.parse(Buffer.concat(chunks).toString() || '{}')]))
    })
    request.on('error', reject)
    request.end(text)
  })
}

const SINGLE = { Update: 'UpdateItem', Put: 'PutItem', Delete: 'DeleteItem' }

async function transact (headers, body) {
  const actions = (body.TransactItems || []).map((item) => {
    const [kind, params] = Object.entries(item)[0]
    return { kind, params, key: params.Key || params.Item }
  })
  const unsupported = actions.find((action) => !SINGLE[action.kind])
  if (unsupported) {
    return [400, { __type: 'com.amazon.coral.validate#ValidationException', message: `local stand-in: no ${unsupported.kind}` }]
  }
  const applied = []
  for (const [index, action] of actions.entries()) {
    const keyOnly = keyOf(action)
    const [, before] = await call(headers, 'GetItem', { TableName: action.params.TableName, Key: keyOnly, ConsistentRead: true })
    const [status, result] = await call(headers, SINGLE[action.kind], action.params)
    if (status === 200) {
      applied.push({ table: action.params.TableName, key: keyOnly, item: before.Item })
      continue
    }
    for (const undo of applied.reverse()) {
      if (undo.item) await call(headers, 'PutItem', { TableName: undo.table, Item: undo.item })
      else await call(headers, 'DeleteItem', { TableName: undo.table, Key: undo.key })
    }
    if (!String(result.__type).endsWith('ConditionalCheckFailedException')) return [status, result]
    const reasons = actions.map((_, other) => other === index
      ? { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' }
      : { Code: 'None' })
    return [400, {
      __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
      message: 'Transaction cancelled, please refer cancellation reasons for specific reasons',
      CancellationReasons: reasons,
    }]
  }
  return [200, {}]
}

// The key attributes of an action's item (a Put names the whole item): pk and sk in this project's tables.
function keyOf (action) {
  if (action.params.Key) return action.params.Key
  const { pk, sk } = action.key
  return sk ? { pk, sk } : { pk }
}

server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
})
const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.resume()
